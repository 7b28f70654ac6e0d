"""The chaos test of issue 3: every reading reaches InfluxDB exactly once, whatever breaks.

Twenty real node processes publish countable synthetic readings through the real Mosquitto (with
persistence) to the real collector, which writes them to the real influxd 1.6.7. Meanwhile the
collector is killed with SIGKILL twice, Mosquitto is restarted, influxd is stopped for 20 s and
one node is killed with SIGKILL and restarted. Each disruption waits for a share of the readings
to be receipted, not for a time. At the end every reading the nodes report is in InfluxDB once,
every outbox is empty, there are no dead letters and completeness shows no gap.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge.outbox import OutboxStats
from tests.cloud.harness import (
    COLLECTOR_MEASUREMENTS,
    BrokerLog,
    CollectorProcess,
    completeness,
    drained,
    hold,
    influx_measurements,
    influx_rows,
    influx_store,
    quote_ident,
    quote_str,
    reaping,
    receipted,
    start_nodes,
    write_collector_config,
    write_fleet,
)
from tests.integration.nodes import NodeProcess, wait_for
from tests.services import InfluxServer, MosquittoServer

pytestmark = pytest.mark.integration

NODES = [f"cx-{i:02d}" for i in range(1, 21)]
#: Synthetic readings per second and per node run: about a minute of production.
RATE = 20.0
COUNT = 1200
DB = "machikado"
#: Half a second of readings per envelope keeps 20 nodes at about 40 messages per second.
NODE_ENV = {"MACHIKADO_OUTBOX__COMMIT_WINDOW_MS": "500"}
#: Each node run also reports its health once at start (interval 3600 s in the node config).
HEALTH_PER_RUN = 1
#: The deliberate store outage of the issue.
INFLUX_OUTAGE_S = 20.0
#: Receipts for writes that finished just before the outage may still be on their way.
OUTAGE_SETTLE_S = 3.0


def readings_in_influx(influx: InfluxServer, node: str) -> list[dict[str, object]]:
    """Every reading point of ``node`` in the store, each with its ``measurement`` added."""
    rows = []
    for m in influx_measurements(influx, DB):
        if m in COLLECTOR_MEASUREMENTS:
            continue
        q = f"SELECT * FROM {quote_ident(m)} WHERE node = {quote_str(node)}"
        rows += [{**r, "measurement": m} for r in influx_rows(influx, DB, q)]
    return rows


def assert_counts_as_ns(ns: list[int], upto: int, what: str) -> None:
    """``ns`` is exactly 1..upto, each once."""
    extra = sorted((Counter(ns) - Counter(range(1, upto + 1))).elements())
    missing = sorted((Counter(range(1, upto + 1)) - Counter(ns)).elements())
    assert not missing, f"{what}: synthetic readings missing from InfluxDB: {missing[:20]}"
    assert not extra, f"{what}: synthetic readings stored more than once: {extra[:20]}"


@dataclass
class Run:
    """What the disruptions left to check: every node's process and the one that was killed."""

    nodes: list[NodeProcess]
    victim: str
    killed_at: OutboxStats
    restarted_at: datetime


def run_through_disruptions(
    collector: CollectorProcess,
    mosquitto: MosquittoServer,
    influxdb: InfluxServer,
    nodes_dir: Path,
    children: list[Any],
) -> Run:
    """Start the nodes, break everything the issue names on the way, wait for every outbox."""
    collector.start()
    nodes = start_nodes(
        nodes_dir,
        NODES,
        port=mosquitto.port,
        rate=RATE,
        count=COUNT,
        resend_after_s=15,
        env=NODE_ENV,
    )
    children += nodes
    total = len(NODES) * COUNT

    def share_receipted(share: float) -> None:
        def reached() -> bool:
            collector.assert_alive()  # a dead collector fails here, with its log
            return receipted(nodes) >= share * total

        wait_for(f"{share:.0%} of the readings receipted", reached, 180)

    def everyone_alive() -> None:
        collector.assert_alive()
        for node in nodes:
            node.assert_alive()

    # 1. The collector crashes: what it held unacked comes again from its broker session.
    share_receipted(0.10)
    collector.kill()
    collector.start()

    # 2. The broker restarts: sessions and queued messages come back from its persistence file.
    share_receipted(0.25)
    mosquitto.restart()

    # 3. The store is down for 20 s: the collector keeps running, retries, and acks nothing.
    share_receipted(0.40)
    influxdb.stop()
    hold(OUTAGE_SETTLE_S, everyone_alive)
    during = receipted(nodes)
    broker_log = BrokerLog(mosquitto)
    hold(INFLUX_OUTAGE_S - OUTAGE_SETTLE_S, everyone_alive)
    assert receipted(nodes) == during, "readings were receipted while influxd was down"
    acks = broker_log.acks_from(collector.client_id)
    assert acks == 0, f"the collector acked {acks} messages to the broker while influxd was down"
    influxdb.start()

    # 4. One node agent dies mid-production and comes back with the same outbox and stream.
    share_receipted(0.55)
    index = min(range(len(nodes)), key=lambda i: nodes[i].stats().produced)
    victim = nodes[index]
    victim.kill()
    killed_at = victim.stats()
    restarted_at = datetime.now(UTC)
    nodes[index] = NodeProcess(victim.config, env=NODE_ENV).start()
    children.append(nodes[index])
    assert nodes[index].stats().stream == killed_at.stream

    # 5. The collector crashes again, after the outage, with the store's backlog being written.
    share_receipted(0.70)
    collector.kill()
    collector.start()

    expected = {n.cfg.node.id: COUNT + HEALTH_PER_RUN for n in nodes}
    expected[victim.cfg.node.id] = killed_at.produced + COUNT + HEALTH_PER_RUN
    wait_for(
        "every node produced everything and its outbox emptied",
        lambda: all(drained(n, produced=expected[n.cfg.node.id]) for n in nodes),
        240,
    )
    for node in nodes:
        assert node.terminate() == 0, node.log_tail()
    assert collector.terminate() == 0, collector.log_tail()
    return Run(nodes, victim.cfg.node.id, killed_at, restarted_at)


@pytest.mark.timeout(480)
def test_every_reading_stored_once_through_crashes_and_outages(
    mosquitto: MosquittoServer, influxdb: InfluxServer, tmp_path: Path
) -> None:
    fleet = write_fleet(tmp_path / "fleet.toml", NODES)
    config = write_collector_config(
        tmp_path / "cloud", broker=mosquitto, store=influx_store(influxdb, DB), manifest=fleet.path
    )
    collector = CollectorProcess(config, broker=mosquitto)
    with reaping() as children:
        children.append(collector)
        run = run_through_disruptions(collector, mosquitto, influxdb, tmp_path / "nodes", children)
    nodes, killed_at, restarted_at = run.nodes, run.killed_at, run.restarted_at

    report = {(s["node"], s["stream"]): s for s in completeness(config)}
    assert not collector.dead_letters(), [d.summary() for d in collector.dead_letters()]
    for node in nodes:
        node_id = node.cfg.node.id
        stats = node.stats()
        assert stats.pending_rows == 0, node_id
        assert stats.pending_readings == 0, node_id
        assert stats.dropped == 0, node_id
        assert stats.receipted == stats.produced, node_id

        rows = readings_in_influx(influxdb, node_id)
        keys = Counter((r["measurement"], r["time"]) for r in rows)
        twice = [k for k, c in keys.items() if c > 1]
        assert not twice, f"{node_id}: readings stored under two series: {twice[:10]}"
        assert len(rows) == stats.produced, (
            f"{node_id}: {len(rows)} readings in InfluxDB, the node produced {stats.produced}"
        )
        trial, site = fleet.assignments[node_id]
        assert {(r["trial"], r["site"]) for r in rows} == {(trial, site)}, node_id

        synthetic = [r for r in rows if r["measurement"] == "synthetic"]
        for r in synthetic:
            n = r["n"]
            assert isinstance(n, int)
            assert r["value"] == math.sin(n / 10.0), f"{node_id}: n={n} value {r['value']!r}"
        if node_id == run.victim:
            cut = int(restarted_at.timestamp() * 1e9)
            first = [int(str(r["n"])) for r in synthetic if int(str(r["time"])) < cut]
            second = [int(str(r["n"])) for r in synthetic if int(str(r["time"])) >= cut]
            assert len(first) == killed_at.produced - HEALTH_PER_RUN, (
                f"{node_id}: {len(first)} readings of the killed run stored, "
                f"its outbox held {killed_at.produced - HEALTH_PER_RUN}"
            )
            assert_counts_as_ns(first, len(first), f"{node_id} before the kill")
            assert_counts_as_ns(second, COUNT, f"{node_id} after the restart")
        else:
            assert_counts_as_ns([int(str(r["n"])) for r in synthetic], COUNT, node_id)

        held = report.get((node_id, stats.stream))
        assert held is not None, f"completeness knows nothing of {node_id} {stats.stream}"
        assert held["missing"] == [], f"{node_id}: completeness reports gaps {held['missing']}"
        assert (held["first"], held["last"]) == (1, stats.last_seq), held
        assert held["received"] == stats.last_seq, held
