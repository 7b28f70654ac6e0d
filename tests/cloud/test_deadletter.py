"""The dead-letter store: every message kept with its reasons, once, bounded, replayable; what is
not kept in full is counted."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from cloud.deadletter import DeadLetterError, DeadLetters, Policy

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
    with DeadLetters(tmp_path / "dl.sqlite", policy=Policy(max_payload_bytes=100)) as dl:
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


class Clock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def refuse(dl: DeadLetters, node: str, seq: int, reasons: int = 480, size: int = 80_000) -> int:
    """What the collector does with a refused envelope of ``reasons`` reasons."""
    return dl.add(
        topic=f"machikado/v1/{node}/data",
        payload=b"{" + b"x" * size + b"}",
        reasons=[f"readings[{i}].fields.v: not a finite number" for i in range(reasons)],
        node=node,
        stream=STREAM,
        seq=seq,
    )


def test_a_record_keeps_the_first_reasons_each_cut_and_counts_them_all(tmp_path: Path) -> None:
    policy = Policy(max_reasons=5, max_reason_chars=64)
    with DeadLetters(tmp_path / "dl.sqlite", policy=policy) as dl:
        rec = dl.get(refuse(dl, "rr-01", 1, reasons=480))
        long = dl.get(
            dl.add(
                topic=TOPIC, payload=b"p", reasons=["y" * 1000], node="rr-01", stream=STREAM, seq=2
            )
        )

    assert rec.reasons == tuple(f"readings[{i}].fields.v: not a finite number" for i in range(5))
    assert rec.reasons_total == 480
    assert rec.summary()["reasons_total"] == 480
    assert long.reasons == ("y" * 64 + "... (1000 characters)",)


def test_past_its_rate_a_node_gets_brief_records_counted_and_others_keep_theirs(
    tmp_path: Path,
) -> None:
    clock = Clock()
    policy = Policy(rate_per_minute=6, burst=3, brief_payload_bytes=16, brief_reasons=2)
    with DeadLetters(tmp_path / "dl.sqlite", policy=policy, clock=clock) as dl:
        ids = [refuse(dl, "rr-01", seq) for seq in range(1, 6)]
        other = dl.get(refuse(dl, "rr-02", 1))
        clock.now += 10.0  # one more full record's worth of rate
        later = dl.get(refuse(dl, "rr-01", 6))
        records = [dl.get(i) for i in ids]
        totals = dl.totals()

    assert [r.kept for r in records] == ["full", "full", "full", "brief", "brief"]
    brief = records[3]
    assert len(brief.payload) == 16
    assert brief.payload_len == 80_002
    assert len(brief.reasons) == 2
    assert brief.reasons_total == 480
    assert not brief.complete
    assert other.kept == "full"
    assert later.kept == "full"
    assert totals["brief"] == 2
    assert totals["by_node"]["rr-01"] == {"brief": 2, "dropped": 0}


def test_past_the_total_cap_the_oldest_records_go_replayed_first_and_are_counted(
    tmp_path: Path,
) -> None:
    policy = Policy(max_records=10, rate_per_minute=0, burst=1000)
    with DeadLetters(tmp_path / "dl.sqlite", policy=policy) as dl:
        first = [refuse(dl, "rr-01", seq, reasons=1, size=10) for seq in range(1, 6)]
        assert refuse(dl, "rr-01", 1, reasons=1, size=10) == first[0]  # a copy, counted
        dl.mark_replayed(first[4])
        more = [refuse(dl, "rr-02", seq, reasons=1, size=10) for seq in range(1, 7)]
        held = {r.id for r in dl.records()}
        totals = dl.totals()

    # The 11th record went past 10: down to 9, the replayed one first, then the oldest.
    assert held == {*first[1:4], *more}
    assert totals["records"] == 9
    # rr-01's seq 1 had come twice: both copies are counted as dropped.
    assert totals["by_node"]["rr-01"]["dropped"] == 1 + 2
    assert totals["dropped"] == 3


def test_four_hundred_refused_envelopes_stay_small_on_disk(tmp_path: Path) -> None:
    # The case: 400 refused envelopes of 480 reasons each took 45.7 MB.
    path = tmp_path / "dl.sqlite"
    with DeadLetters(path, clock=Clock()) as dl:
        for seq in range(1, 401):
            refuse(dl, "rr-01", seq, reasons=480, size=200_000)
        totals = dl.totals()

    size = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert totals["records"] == 400
    assert totals["brief"] == 400 - Policy().burst
    assert size < 10 * 2**20


def test_a_dead_letter_file_of_the_first_schema_is_brought_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "dl.sqlite"
    db = sqlite3.connect(path)
    db.executescript(FIRST_SCHEMA)
    db.execute(
        "INSERT INTO dead_letter (received_at, last_received_at, topic, payload, payload_len,"
        " payload_sha256, reasons, dedupe_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            "2026-01-01T00:00:00+00:00",
            "2026-01-01T00:00:00+00:00",
            TOPIC,
            b"p",
            1,
            "0",
            '["r"]',
            "k",
        ),
    )
    db.commit()
    db.close()

    with DeadLetters(path) as dl:
        [old] = dl.records()
        new = dl.get(dl.add(topic=TOPIC, payload=b"q", reasons=["s"]))

    assert (old.reasons, old.reasons_total, old.kept) == (("r",), 1, "full")
    assert new.kept == "full"


FIRST_SCHEMA = """
CREATE TABLE dead_letter (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    last_received_at TEXT NOT NULL,
    times INTEGER NOT NULL DEFAULT 1,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    payload_len INTEGER NOT NULL,
    payload_sha256 TEXT NOT NULL,
    reasons TEXT NOT NULL,
    node TEXT,
    stream TEXT,
    seq INTEGER,
    dedupe_key TEXT NOT NULL UNIQUE,
    replayed_at TEXT
);
"""
