"""The collector's status file: counters and, from the store, per stream what is held and what
is missing; whole JSON at every moment, and a last file after the drain."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud.collector.points import LINK, link_time_ns
from cloud.collector.settings import MqttSection
from cloud.collector.status import StatusWriter
from cloud.config import CollectorConfig
from cloud.errors import StoreUnavailable
from cloud.store.base import Point
from cloud.store.sqlite import SqliteStore

SENT = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def link(node: str, stream: str, seq: int, readings: int) -> Point:
    return Point(
        LINK,
        {"node": node, "stream": stream},
        {"seq": seq, "readings": readings, "latency_s": 0.01},
        link_time_ns(SENT + timedelta(seconds=seq), seq),
    )


def facts() -> dict[str, Any]:
    return {"received": 7, "dead_letters": 1, "connected": True, "subscribed": True}


def test_status_file_shows_stored_readings_last_seq_and_missing_seqs_per_stream(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "store.sqlite")
    store.write([link("rr-01", "s1", seq, 2) for seq in (1, 2, 3, 6)])
    store.write([link("mv-01", "s2", 1, 5)])
    path = tmp_path / "status.json"
    writer = StatusWriter(path, store, store_label="sqlite store.sqlite", close=store.close)
    writer.start(facts)
    writer.stop()
    status = json.loads(path.read_text())
    assert status["running"] is False
    assert status["collector"]["received"] == 7
    assert status["collector"]["dead_letters"] == 1
    assert status["nodes"] == {
        "mv-01": {"envelopes": 1, "readings": 5, "last_seq": 1, "missing": 0},
        "rr-01": {"envelopes": 4, "readings": 8, "last_seq": 6, "missing": 2},
    }
    rr = next(s for s in status["streams"] if s["node"] == "rr-01")
    assert (rr["stream"], rr["first"], rr["last_seq"], rr["missing"]) == ("s1", 1, 6, 2)


def test_a_stream_whose_first_seqs_never_came_counts_them_missing(tmp_path: Path) -> None:
    store = SqliteStore(":memory:")
    store.write([link("rr-01", "s1", seq, 1) for seq in (4, 5)])
    status = StatusWriter(tmp_path / "s.json", store, store_label="sqlite").write()
    assert status["nodes"]["rr-01"]["missing"] == 3


def test_messages_per_second_follow_the_received_counter(tmp_path: Path) -> None:
    now = [SENT]
    received = [0]
    writer = StatusWriter(
        tmp_path / "s.json", SqliteStore(":memory:"), store_label="sqlite", clock=lambda: now[0]
    )
    writer._facts = lambda: {"received": received[0]}
    assert writer.write()["collector"]["messages_per_s"] == 0.0
    now[0] += timedelta(seconds=2)
    received[0] = 30
    assert writer.write()["collector"]["messages_per_s"] == 15.0


class DownStore(SqliteStore):
    """A store whose reads fail while ``down`` is set."""

    down = False

    def link_seqs(self, **kw: Any) -> dict[tuple[str, str], set[int]]:
        if self.down:
            raise StoreUnavailable("store is down")
        return super().link_seqs(**kw)


def test_a_store_that_cannot_be_read_keeps_the_last_streams_and_says_why(tmp_path: Path) -> None:
    store = DownStore(":memory:")
    store.write([link("rr-01", "s1", 1, 3)])
    writer = StatusWriter(tmp_path / "s.json", store, store_label="sqlite")
    writer._facts = facts
    writer.write()
    store.down = True
    status = writer.write()
    assert status["store_error"] == "store is down"
    assert status["nodes"]["rr-01"]["readings"] == 3
    store.down = False
    assert writer.write()["store_error"] is None


def test_a_reader_never_sees_half_a_status_file(tmp_path: Path) -> None:
    store = SqliteStore(":memory:")
    store.write([link("rr-01", "s1", seq, 1) for seq in range(1, 200)])
    path = tmp_path / "status.json"
    writer = StatusWriter(path, store, store_label="sqlite", interval_s=0.01)
    writer.start(facts)
    bad: list[str] = []
    done = threading.Event()

    def read() -> None:
        reads = 0
        while reads < 300:
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            try:
                json.loads(text)
            except ValueError:
                bad.append(text)
            reads += 1
        done.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert done.wait(30)
    reader.join()
    writer.stop()
    assert bad == []


def test_status_section_and_mqtt_protocol_are_config_keys() -> None:
    cfg = CollectorConfig.model_validate(
        {"status": {"path": "var/cloud/status.json"}, "mqtt": {"protocol": "3.1.1"}}
    )
    assert cfg.status.path == Path("var/cloud/status.json")
    assert cfg.mqtt.protocol == "3.1.1"
    assert CollectorConfig().status.path is None
    assert MqttSection().protocol == "5"
    with pytest.raises(ValueError, match="protocol"):
        MqttSection.model_validate({"protocol": "4"})
