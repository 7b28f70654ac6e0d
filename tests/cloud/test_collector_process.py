"""The collector as its own process (``machikado cloud collect``): SIGKILL, SIGTERM, a real node.

The store is the embedded SQLite store, so what the collector wrote survives it and is read back
here; Mosquitto's log says what the collector acked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.store import ReadableStore, StoreSettings, open_store
from protocol import Reading, Receipt, encode_envelope, encode_readings
from tests.cloud.harness import (
    CollectorProcess,
    completeness,
    sqlite_store,
    write_collector_config,
    write_fleet,
)
from tests.integration.nodes import NodeProcess, wait_for, write_node_config
from tests.services import MosquittoServer, RecordingClient

pytestmark = pytest.mark.integration

STREAM = "stream-00000000000000000002"
CLIENT = "machikado-collector"
#: A batch that is written only when the collector is told to stop.
HOLD = {"MACHIKADO_BATCH__MAX_DELAY_MS": "60000", "MACHIKADO_BATCH__IDLE_MS": "60000"}


def envelope(seq: int, node: str = "rr-01") -> bytes:
    now = datetime.now(UTC)
    reading = Reading(m="synthetic", at=now - timedelta(milliseconds=seq), fields={"n": seq})
    return encode_envelope(
        node=node, stream=STREAM, seq=seq, sent_at=now, readings_json=encode_readings([reading])
    )


def drained(node: NodeProcess, count: int) -> bool:
    stats = node.stats()
    return stats.produced >= count and stats.pending_rows == 0 and stats.receipted == stats.produced


def broker_log(broker: MosquittoServer) -> str:
    return broker.log_path.read_text(errors="replace")


def sent_to_collector(broker: MosquittoServer) -> int:
    return broker_log(broker).count(f"Sending PUBLISH to {CLIENT} ")


def acks_from_collector(broker: MosquittoServer) -> int:
    return broker_log(broker).count(f"Received PUBACK from {CLIENT} ")


@contextmanager
def sqlite(path: Path) -> Iterator[ReadableStore]:
    store = open_store(StoreSettings(kind="sqlite", path=path))
    try:
        yield store
    finally:
        store.close()


def stored(path: Path, measurement: str) -> int:
    with sqlite(path) as store:
        return store.count(measurement, by=None).get("", 0)


def setup(tmp_path: Path, broker: MosquittoServer) -> tuple[Path, Path]:
    fleet = write_fleet(tmp_path / "fleet.toml", ["rr-01"])
    db = tmp_path / "store.sqlite"
    config = write_collector_config(
        tmp_path / "collector", broker=broker, store=sqlite_store(db), manifest=fleet.path
    )
    return config, db


def test_collector_killed_between_receive_and_write_loses_nothing(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config, db = setup(tmp_path, mosquitto)
    collector = CollectorProcess(config, broker=mosquitto, env=HOLD).start()
    with RecordingClient(mosquitto) as node:
        node.publish("machikado/v1/rr-01/data", envelope(1))
    wait_for("the broker to hand the message over", lambda: sent_to_collector(mosquitto) >= 1, 20)
    collector.kill()
    assert acks_from_collector(mosquitto) == 0
    assert not db.exists() or stored(db, "synthetic") == 0

    again = CollectorProcess(config, broker=mosquitto).start()
    wait_for("the redelivered message stored", lambda: stored(db, "synthetic") == 1, 30)
    wait_for("the broker to get its ack", lambda: acks_from_collector(mosquitto) >= 1, 20)
    assert again.terminate() == 0
    assert stored(db, "synthetic") == 1
    assert stored(db, "link") == 1
    assert again.dead_letters() == []


def test_sigterm_writes_acks_and_receipts_what_is_held_then_exits_0(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config, db = setup(tmp_path, mosquitto)
    collector = CollectorProcess(config, broker=mosquitto, env=HOLD).start()
    with RecordingClient(mosquitto) as node:
        node.subscribe("machikado/v1/rr-01/receipt")
        for seq in range(1, 6):
            node.publish("machikado/v1/rr-01/data", envelope(seq))
        wait_for("5 messages handed over", lambda: sent_to_collector(mosquitto) >= 5, 20)
        assert acks_from_collector(mosquitto) == 0
        assert collector.terminate() == 0

        def receipted() -> set[int]:
            seqs: set[int] = set()
            for msg in list(node.messages):
                for lo, hi in Receipt.model_validate_json(msg.payload).ranges:
                    seqs.update(range(lo, hi + 1))
            return seqs

        # The drain may write what it holds in one batch or several: every seq is receipted.
        wait_for("receipts for seqs 1-5", lambda: receipted() == {1, 2, 3, 4, 5}, 20)
    assert stored(db, "synthetic") == 5
    assert acks_from_collector(mosquitto) == 5
    assert "collector_stopped" in collector.log_tail(5)


def test_receipts_from_the_collector_empty_a_real_nodes_outbox(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    count = 400
    config, db = setup(tmp_path, mosquitto)
    collector = CollectorProcess(config, broker=mosquitto).start()
    node = NodeProcess(
        write_node_config(
            tmp_path / "node", node="rr-01", port=mosquitto.port, rate=200, count=count
        )
    ).start()
    try:
        wait_for("the outbox emptied by receipts", lambda: drained(node, count), 90)
        stats = node.stats()
    finally:
        assert node.terminate() == 0
    assert stored(db, "synthetic") == count
    report = {(s["node"], s["stream"]): s for s in completeness(config)}
    held = report[("rr-01", stats.stream)]
    assert (held["first"], held["last"], held["received"]) == (1, stats.last_seq, stats.last_seq)
    assert held["missing"] == []
    assert collector.terminate() == 0
    assert collector.dead_letters() == []
