"""Batches become durable: retried while the store is down, refused points isolated."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from cloud.collector.batch import Abandoned, BatchWriter, Message
from cloud.collector.intake import Intake
from cloud.deadletter import DeadLetters
from cloud.fleet import Fleet
from protocol import Reading, Topics, encode_envelope, encode_readings
from tests.cloud.collector_fakes import FakeStore

NOW = datetime.now(UTC)
STREAM = "stream-0000000001"
FLEET = Fleet.model_validate(
    {
        "trials": [{"id": "t", "name": "T"}],
        "sites": [{"id": "s", "name": "S", "trial": "t"}],
        "nodes": [{"id": "rr-01", "kind": "kiosk", "trial": "t", "site": "s"}],
    }
)
TAKE = Intake(Topics("machikado"), FLEET)


def message(seq: int, value: float = 1.0, node: str = "rr-01") -> Message:
    reading = Reading(m="synthetic", at=NOW - timedelta(seconds=seq), fields={"v": value, "n": seq})
    payload = encode_envelope(
        node=node, stream=STREAM, seq=seq, sent_at=NOW, readings_json=encode_readings([reading])
    )
    topic = f"machikado/v1/{node}/data"
    return Message(topic, payload, NOW, TAKE(topic, payload, NOW), mid=seq, qos=1)


def batch_of(*messages: Message) -> list[Message]:
    return list(messages)


@pytest.fixture
def dead_letters(tmp_path: Path):
    with DeadLetters(tmp_path / "dl.sqlite") as dl:
        yield dl


def test_batch_is_written_and_its_seqs_reported(dead_letters: DeadLetters) -> None:
    store = FakeStore()
    written = BatchWriter(store, dead_letters, initial_s=0.01, max_s=0.05).write(
        batch_of(message(1), message(2), message(3))
    )
    assert written.seqs == {("rr-01", STREAM): {1, 2, 3}}
    assert written.stored == 3
    assert len(store.of("synthetic")) == 3
    assert len(store.of("link")) == 3
    assert len(store.of("fleet_state")) == 1
    assert store.writes == 1


def test_write_waits_out_a_store_outage_and_loses_nothing(dead_letters: DeadLetters) -> None:
    store = FakeStore()
    store.down = True
    writer = BatchWriter(store, dead_letters, initial_s=0.01, max_s=0.05)
    result = []
    worker = threading.Thread(target=lambda: result.append(writer.write(batch_of(message(1)))))
    worker.start()
    assert store.wait_until(lambda: store.failed_writes >= 3)
    assert result == []
    assert store.of("synthetic") == []
    store.down = False
    worker.join(10)
    assert result[0].seqs == {("rr-01", STREAM): {1}}
    assert len(store.of("synthetic")) == 1


def test_giving_up_on_a_down_store_writes_and_reports_nothing(dead_letters: DeadLetters) -> None:
    store = FakeStore()
    store.down = True
    give_up = threading.Event()
    writer = BatchWriter(store, dead_letters, initial_s=0.01, max_s=0.05, give_up=give_up)
    threading.Timer(0.2, give_up.set).start()
    with pytest.raises(Abandoned):
        writer.write(batch_of(message(1)))
    assert dead_letters.count() == 0


def test_refused_message_is_dead_lettered_and_the_rest_stored(dead_letters: DeadLetters) -> None:
    store = FakeStore()
    store.refuse = lambda p: "value 13 not allowed" if p.fields.get("v") == 13.0 else None
    written = BatchWriter(store, dead_letters, initial_s=0.01, max_s=0.05).write(
        batch_of(message(1), message(2, value=13.0), message(3))
    )
    assert sorted(int(p.fields["n"]) for p in store.of("synthetic")) == [1, 3]
    [record] = dead_letters.records()
    assert record.reasons == ("value 13 not allowed",)
    assert record.seq == 2
    assert written.dead_lettered == 1
    # the node still gets a receipt for seq 2: the cloud holds it, replayably
    assert written.seqs == {("rr-01", STREAM): {1, 2, 3}}


def test_invalid_message_goes_to_dead_letters_before_the_batch_counts_as_written(
    dead_letters: DeadLetters,
) -> None:
    store = FakeStore()
    bad = Message("machikado/v1/rr-01/data", b"{", NOW, TAKE("machikado/v1/rr-01/data", b"{", NOW))
    written = BatchWriter(store, dead_letters, initial_s=0.01, max_s=0.05).write(
        batch_of(message(1), bad)
    )
    assert written.dead_lettered == 1
    assert dead_letters.count() == 1
    assert written.seqs == {("rr-01", STREAM): {1}}


def test_a_refused_message_is_one_log_line_with_its_count_of_reasons_and_the_first_few(
    dead_letters: DeadLetters,
) -> None:
    bad = {"m": "synthetic", "at": NOW.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "fields": {"v": "x\x00"}}
    doc = {"v": 1, "node": "rr-01", "stream": STREAM, "seq": 9, "sent_at": bad["at"]}
    payload = json.dumps({**doc, "readings": [bad] * 480}).encode()
    topic = "machikado/v1/rr-01/data"
    msg = Message(topic, payload, NOW, TAKE(topic, payload, NOW), mid=1, qos=1)

    with structlog.testing.capture_logs() as logs:
        written = BatchWriter(FakeStore(), dead_letters, initial_s=0.01, max_s=0.05).write([msg])

    assert written.dead_lettered == 1
    [line] = [e for e in logs if e["event"] == "message_dead_lettered"]
    assert (line["node"], line["stream"], line["seq"]) == ("rr-01", STREAM, 9)
    assert line["reasons_count"] == 480
    assert line["reasons"] == [
        f"readings[{i}].fields.v: holds a control character" for i in range(3)
    ]
    [record] = dead_letters.records()
    assert record.reasons_total == 480
    assert len(record.reasons) == 20
