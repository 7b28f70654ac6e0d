"""The dead-letter store: every message kept with its reasons, once, bounded, replayable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cloud.deadletter import DeadLetterError, DeadLetters

TOPIC = "machikado/v1/rr-01/data"
STREAM = "0123456789abcdef"


def test_record_keeps_topic_payload_reasons_and_who(tmp_path: Path) -> None:
    with DeadLetters(tmp_path / "dl.sqlite") as dl:
        rid = dl.add(
            topic=TOPIC,
            payload=b'{"v":2}',
            reasons=["v: bad", "seq: missing"],
            node="rr-01",
            stream=STREAM,
            seq=7,
        )
        rec = dl.get(rid)
    assert rec.topic == TOPIC
    assert rec.payload == b'{"v":2}'
    assert rec.reasons == ("v: bad", "seq: missing")
    assert (rec.node, rec.stream, rec.seq) == ("rr-01", STREAM, 7)
    assert rec.replayed_at is None
    assert rec.complete


def test_same_message_for_same_reasons_is_one_record_counted(tmp_path: Path) -> None:
    with DeadLetters(tmp_path / "dl.sqlite") as dl:
        first = dl.add(topic=TOPIC, payload=b"a", reasons=["r"], node="rr-01", stream=STREAM, seq=1)
        again = dl.add(topic=TOPIC, payload=b"b", reasons=["r"], node="rr-01", stream=STREAM, seq=1)
        other = dl.add(topic=TOPIC, payload=b"a", reasons=["x"], node="rr-01", stream=STREAM, seq=1)
        anon1 = dl.add(topic=TOPIC, payload=b"junk", reasons=["not JSON"])
        anon2 = dl.add(topic=TOPIC, payload=b"junk", reasons=["not JSON"])
        assert first == again
        assert other != first
        assert anon1 == anon2
        assert dl.count() == 3
        assert dl.get(first).times == 2


def test_oversized_payload_is_cut_but_its_length_and_hash_kept(tmp_path: Path) -> None:
    big = b"x" * 5000
    with DeadLetters(tmp_path / "dl.sqlite", max_payload_bytes=100) as dl:
        rec = dl.get(dl.add(topic=TOPIC, payload=big, reasons=["too big"]))
    assert len(rec.payload) == 100
    assert rec.payload_len == 5000
    assert rec.payload_sha256 == hashlib.sha256(big).hexdigest()
    assert not rec.complete


def test_records_survive_reopening_and_replay_is_marked(tmp_path: Path) -> None:
    path = tmp_path / "dl.sqlite"
    with DeadLetters(path) as dl:
        rid = dl.add(topic=TOPIC, payload=b"p", reasons=["unknown node"])
    with DeadLetters(path) as dl:
        assert [r.id for r in dl.records(pending_only=True)] == [rid]
        dl.mark_replayed(rid)
        assert dl.records(pending_only=True) == []
        assert dl.get(rid).replayed_at is not None
        assert dl.count() == 1


def test_asking_for_a_missing_record_names_it(tmp_path: Path) -> None:
    with (
        DeadLetters(tmp_path / "dl.sqlite") as dl,
        pytest.raises(DeadLetterError, match="no record 42"),
    ):
        dl.get(42)


def test_binary_payload_is_shown_as_hex(tmp_path: Path) -> None:
    with DeadLetters(tmp_path / "dl.sqlite") as dl:
        detail = dl.get(dl.add(topic=TOPIC, payload=b"\xff\x00", reasons=["r"])).detail()
    assert detail["payload"] == "ff00"
    assert detail["payload_encoding"] == "hex"
