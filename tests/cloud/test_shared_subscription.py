"""Two collectors on one MQTT shared subscription store everything exactly once.

What Mosquitto 2.0.11 does when a member of a shared subscription dies (found out by hand, and
pinned here): the group does not fail over. The dead member's session persists (its
``session_expiry_s``), the broker keeps handing it every other message of the group by round
robin, and it queues those, with the ones that were in flight unacked, until that client id
connects again. Nothing reaches the survivor by itself. So the nodes' resend after
``resend_after_s`` is what gets those readings stored meanwhile: each resend is dealt to a
member again, half the time the live one. When the dead collector comes back it gets its queue
of stale copies, which the store writes over themselves, and nothing counts twice.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.harness import (
    BrokerLog,
    CollectorProcess,
    completeness,
    drained,
    influx_rows,
    influx_store,
    quote_str,
    reaping,
    receipted,
    start_nodes,
    write_collector_config,
    write_fleet,
)
from tests.integration.nodes import NodeProcess, wait_for
from tests.integration.test_broker_acl import SHIPPED_ACL
from tests.services import InfluxServer, MosquittoFactory, MosquittoServer

pytestmark = pytest.mark.integration

NODES = [f"sh-{i:02d}" for i in range(1, 7)]
RATE = 50.0
COUNT = 1500
DB = "machikado"
GROUP = "collectors"
#: One MQTT user per collector process, as the shipped ACL has them.
COLLECTORS = ("collector-1", "collector-2")
#: Short, so the readings dealt to the dead member are sent again soon.
RESEND_AFTER_S = 2.0
#: A fifth of a second of readings per envelope.
NODE_ENV = {"MACHIKADO_OUTBOX__COMMIT_WINDOW_MS": "200"}
HEALTH_PER_RUN = 1


def queue_emptied(log: BrokerLog, client_id: str) -> bool:
    """Whether the broker has nothing in flight to ``client_id``: all it sent is acked, twice."""
    settled = [False, False]
    pause = threading.Event()
    for i in range(2):
        sent, acked = log.qos1_sent(client_id), log.acks_from(client_id)
        settled[i] = sent > 0 and sent == acked
        pause.wait(0.5)
    return all(settled)


def run_with_one_collector_killed(
    collectors: list[CollectorProcess],
    mosquitto: MosquittoServer,
    nodes_dir: Path,
    children: list[Any],
    passwords: dict[str, str],
) -> list[NodeProcess]:
    """Both collectors take data; one dies; the other and the nodes' resends finish the job."""
    survivor, victim = collectors
    for collector in collectors:
        children.append(collector.start())
    log = BrokerLog(mosquitto)
    nodes = start_nodes(
        nodes_dir,
        NODES,
        port=mosquitto.port,
        rate=RATE,
        count=COUNT,
        resend_after_s=RESEND_AFTER_S,
        env=NODE_ENV,
        passwords=passwords,
    )
    children += nodes
    total = len(NODES) * COUNT

    def third_receipted() -> bool:
        for collector in collectors:
            collector.assert_alive()
        return receipted(nodes) >= total / 3

    wait_for("a third of the readings receipted", third_receipted, 120)
    split = {c.client_id: log.data_sent(c.client_id) for c in collectors}
    assert all(n > 0 for n in split.values()), f"the group did not split the load: {split}"
    victim.kill()

    def all_drained() -> bool:
        survivor.assert_alive()
        return all(drained(n, produced=COUNT + HEALTH_PER_RUN) for n in nodes)

    wait_for("every outbox emptied with one collector left", all_drained, 180)
    resent = sum(n.stats().sent for n in nodes) - sum(n.stats().produced for n in nodes)
    assert resent > 0, "nothing was sent twice: the kill should have left readings to resend"

    # The dead member returns and works off its queue of copies that are stored already.
    log.mark()
    victim.start()
    wait_for(
        f"{victim.client_id} to work off its queue",
        lambda: queue_emptied(log, victim.client_id),
        60,
    )
    assert log.data_sent(victim.client_id) > 0, "the broker kept nothing for the dead member"

    for node in nodes:
        assert node.terminate() == 0, node.log_tail()
    for collector in collectors:
        assert collector.terminate() == 0, collector.log_tail()
    return nodes


@pytest.mark.timeout(300)
def test_two_collectors_on_a_shared_subscription_store_everything_once(
    mosquitto_factory: MosquittoFactory, influxdb: InfluxServer, tmp_path: Path
) -> None:
    # The shipped broker's way: its ACL, every client under its own username, the username as
    # the client id; so each collector process logs in as a collector-<n> of its own.
    passwords = {name: f"{name}-secret" for name in (*NODES, *COLLECTORS)}
    mosquitto = mosquitto_factory(
        users=passwords, acl_file=SHIPPED_ACL, extra_conf="use_username_as_clientid true"
    )
    fleet = write_fleet(tmp_path / "fleet.toml", NODES)
    collectors = [
        CollectorProcess(
            write_collector_config(
                tmp_path / "cloud" / user,
                broker=mosquitto,
                store=influx_store(influxdb, DB),
                manifest=fleet.path,
                # Both send one client id: the broker tells them apart by their usernames.
                client_id="machikado-collector",
                username=user,
                password=passwords[user],
                shared_group=GROUP,
            ),
            broker=mosquitto,
        )
        for user in COLLECTORS
    ]
    assert [c.client_id for c in collectors] == list(COLLECTORS)
    with reaping() as children:
        nodes = run_with_one_collector_killed(
            collectors, mosquitto, tmp_path / "nodes", children, passwords
        )

    for collector in collectors:
        assert not collector.dead_letters(), [d.summary() for d in collector.dead_letters()]
    report = {(s["node"], s["stream"]): s for s in completeness(collectors[0].config)}
    for node in nodes:
        node_id = node.cfg.node.id
        stats = node.stats()
        assert stats.pending_rows == 0, node_id
        assert stats.receipted == stats.produced, node_id
        where = f"node = {quote_str(node_id)}"
        synthetic = influx_rows(influxdb, DB, f"SELECT n FROM synthetic WHERE {where}")
        health = influx_rows(influxdb, DB, f"SELECT * FROM node_health WHERE {where}")
        assert len(synthetic) + len(health) == stats.produced, node_id
        ns = Counter(int(r["n"]) for r in synthetic)
        assert ns == Counter(range(1, COUNT + 1)), (
            f"{node_id}: missing {sorted(set(range(1, COUNT + 1)) - set(ns))[:20]}, "
            f"twice {[n for n, c in ns.items() if c > 1][:20]}"
        )
        held = report[(node_id, stats.stream)]
        assert held["missing"] == [], held
        assert (held["first"], held["last"]) == (1, stats.last_seq), held
        assert held["received"] == stats.last_seq, held
