"""The node's durable outbox: seqs, streams, the bound, hand-outs, receipts and durability."""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from edge.errors import OutboxError, OutboxFull
from edge.outbox import Outbox, OutboxStats
from protocol import Reading, encode_envelope, encode_readings, parse_envelope
from protocol.limits import DEFAULT_LIMITS

BASE = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def reading(i: int) -> Reading:
    return Reading(
        m="visit",
        at=BASE + timedelta(microseconds=i),
        sensor="stall-1",
        tags={"stall": "1"},
        fields={"i": i, "duration_s": i / 3, "ok": i % 2 == 0, "note": f"n{i}"},
    )


def parse_rows(readings_json: bytes) -> list[Reading]:
    return [Reading.model_validate(r) for r in json.loads(readings_json)]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "outbox.sqlite"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(path: Path, clock: Clock) -> Iterator[Outbox]:
    with Outbox(path, node="rr-01", readings_per_envelope=5, clock=clock) as box:
        yield box


def held_seqs(box: Outbox, now: float = 1e12) -> list[int]:
    box.forget_sent()
    return [r.seq for r in box.due(now=now, resend_after=0, limit_readings=10**9)]


# --- seq and stream -------------------------------------------------------------------------


def test_first_seq_is_1_and_seqs_continue_after_reopen(path: Path) -> None:
    with Outbox(path, node="rr-01") as box:
        box.append(reading(0))
        assert box.commit() == [1]
        box.append(reading(1))
        assert box.commit() == [2]
    with Outbox(path, node="rr-01") as box:
        box.append(reading(2))
        assert box.commit() == [3]
        assert box.stats().last_seq == 3


def test_seq_is_never_reused_after_rows_are_receipted(path: Path) -> None:
    with Outbox(path, node="rr-01") as box:
        box.extend(reading(i) for i in range(3))
        box.commit()
        box.append(reading(3))
        box.commit()
        assert box.receipt(box.stream, [(1, 2)]) == 4
        assert box.stats().pending_rows == 0
    with Outbox(path, node="rr-01") as box:
        box.append(reading(4))
        assert box.commit() == [3]


def test_commit_with_nothing_buffered_uses_no_seq(outbox: Outbox) -> None:
    assert outbox.commit() == []
    outbox.append(reading(0))
    assert outbox.commit() == [1]


def test_stream_persists_across_reopen_and_a_new_file_is_a_new_stream(tmp_path: Path) -> None:
    first = tmp_path / "a.sqlite"
    with Outbox(first, node="rr-01") as box:
        stream = box.stream
    with Outbox(first, node="rr-01") as box:
        assert box.stream == stream
    with Outbox(tmp_path / "b.sqlite", node="rr-01") as other:
        assert other.stream != stream
        assert len(other.stream) == 32
        int(other.stream, 16)  # uuid4 hex


def test_outbox_creates_its_parent_directories(tmp_path: Path) -> None:
    deep = tmp_path / "var" / "lib" / "machikado" / "outbox.sqlite"
    with Outbox(deep, node="rr-01"):
        pass
    assert deep.is_file()


# --- what is stored -------------------------------------------------------------------------


def test_readings_round_trip_exactly(outbox: Outbox) -> None:
    readings = [reading(i) for i in range(3)]
    outbox.extend(readings)
    outbox.commit()
    (row,) = outbox.due(now=2_000.0, resend_after=30, limit_readings=100)
    assert row.readings_json == encode_readings(readings)
    assert parse_rows(row.readings_json) == readings
    assert (row.seq, row.n_readings, row.attempts, row.created_at) == (1, 3, 0, 1_000.0)


def test_envelopes_split_at_readings_per_envelope(outbox: Outbox) -> None:
    readings = [reading(i) for i in range(12)]
    outbox.extend(readings)
    assert outbox.commit() == [1, 2, 3]
    rows = outbox.due(now=2_000.0, resend_after=30, limit_readings=100)
    assert [r.n_readings for r in rows] == [5, 5, 2]
    assert [x for r in rows for x in parse_rows(r.readings_json)] == readings


def test_envelopes_also_split_to_stay_within_the_payload_limit(path: Path) -> None:
    wide = [
        Reading(
            m="dump",
            at=BASE + timedelta(seconds=i),
            fields={f"f{k}": "x" * 256 for k in range(64)},
        )
        for i in range(30)
    ]
    with Outbox(path, node="rr-01", readings_per_envelope=500) as box:
        box.extend(wide)
        seqs = box.commit()
        rows = box.due(now=1e12, resend_after=30, limit_readings=1000)
        stream = box.stream
    assert len(seqs) > 1
    assert sum(r.n_readings for r in rows) == 30
    for row in rows:
        payload = encode_envelope(
            node="rr-01", stream=stream, seq=row.seq, sent_at=BASE, readings_json=row.readings_json
        )
        assert len(payload) <= DEFAULT_LIMITS.max_payload_bytes
        assert parse_envelope(payload, topic_node="rr-01", now=BASE).seq == row.seq


def test_buffered_counts_readings_until_commit(outbox: Outbox) -> None:
    outbox.extend(reading(i) for i in range(4))
    assert outbox.buffered == 4
    outbox.commit()
    assert outbox.buffered == 0
    assert outbox.stats().pending_readings == 4


def test_append_rejects_what_is_not_a_reading(outbox: Outbox) -> None:
    with pytest.raises(TypeError, match=r"protocol\.Reading"):
        outbox.append({"m": "visit"})  # type: ignore[arg-type]


def test_appends_from_several_threads_while_committing_lose_nothing(outbox: Outbox) -> None:
    def produce(base: int) -> None:
        for i in range(300):
            outbox.append(reading(base + i))

    threads = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        outbox.commit()
    for t in threads:
        t.join()
    outbox.commit()
    rows = outbox.due(now=2_000.0, resend_after=30, limit_readings=10**6)
    got = sorted(int(r.fields["i"]) for row in rows for r in parse_rows(row.readings_json))
    assert got == sorted(k * 1000 + i for k in range(4) for i in range(300))
    assert outbox.stats().produced == 1200


# --- the bound ------------------------------------------------------------------------------


def test_drop_oldest_deletes_old_rows_counts_and_logs_them(path: Path) -> None:
    with Outbox(path, node="rr-01", readings_per_envelope=5, max_readings=10) as box:
        box.extend(reading(i) for i in range(10))
        box.commit()
        box.extend(reading(i) for i in range(10, 13))
        with structlog.testing.capture_logs() as logs:
            assert box.commit() == [3]
        stats = box.stats()
        assert held_seqs(box) == [2, 3]
    assert (stats.pending_readings, stats.dropped, stats.produced) == (8, 5, 13)
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert warning["count"] == 5
    assert warning["node"] == "rr-01"
    assert warning["stream"] == stats.stream


def test_drop_oldest_keeps_the_newest_of_a_batch_larger_than_the_bound(path: Path) -> None:
    with Outbox(path, node="rr-01", readings_per_envelope=5, max_readings=4) as box:
        box.extend(reading(i) for i in range(6))
        assert box.commit() == [1]
        (row,) = box.due(now=1e12, resend_after=30, limit_readings=100)
        stats = box.stats()
    assert [r.fields["i"] for r in parse_rows(row.readings_json)] == [2, 3, 4, 5]
    assert (stats.dropped, stats.produced, stats.pending_readings) == (2, 4, 4)


def test_drop_newest_discards_what_does_not_fit_without_using_seqs(path: Path) -> None:
    with Outbox(
        path, node="rr-01", readings_per_envelope=5, max_readings=10, when_full="drop_newest"
    ) as box:
        box.extend(reading(i) for i in range(8))
        assert box.commit() == [1, 2]
        box.extend(reading(i) for i in range(8, 13))
        with structlog.testing.capture_logs() as logs:
            assert box.commit() == [3]
        rows = box.due(now=1e12, resend_after=30, limit_readings=100)
        stats = box.stats()
        box.append(reading(99))
        assert box.commit() == []  # full: nothing stored, no seq consumed
        assert box.receipt(box.stream, [(1, 1)]) == 5
        box.append(reading(100))
        assert box.commit() == [4]
    assert [r.fields["i"] for r in parse_rows(rows[-1].readings_json)] == [8, 9]
    assert (stats.pending_readings, stats.dropped, stats.produced, stats.last_seq) == (10, 3, 10, 3)
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert (warning["count"], warning["node"]) == (3, "rr-01")


def test_refuse_raises_outbox_full_at_append_and_counts_it(path: Path) -> None:
    with Outbox(path, node="rr-01", max_readings=5, when_full="refuse") as box:
        box.extend(reading(i) for i in range(3))
        box.commit()
        box.extend(reading(i) for i in range(3, 5))
        with structlog.testing.capture_logs() as logs, pytest.raises(OutboxFull, match="5"):
            box.append(reading(5))
        assert box.stats().dropped == 1
        box.commit()
        assert Outbox.read_stats(path).dropped == 1
        assert box.receipt(box.stream, [(1, 1)]) == 3
        box.append(reading(6))  # room again
        box.commit()
        stats = box.stats()
    assert (stats.pending_readings, stats.produced, stats.dropped) == (3, 6, 1)
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert (warning["count"], warning["node"], warning["stream"]) == (1, "rr-01", stats.stream)


def test_a_dropped_seq_is_not_reused(path: Path) -> None:
    with Outbox(path, node="rr-01", readings_per_envelope=1, max_readings=2) as box:
        box.extend(reading(i) for i in range(2))
        assert box.commit() == [1, 2]
        box.append(reading(2))
        assert box.commit() == [3]
        assert held_seqs(box) == [2, 3]
        box.extend(reading(i) for i in range(3, 6))
        assert box.commit() == [4, 5]  # the batch's oldest reading never got a seq
        assert held_seqs(box) == [4, 5]
        assert box.stats().dropped == 1 + 2 + 1
    with Outbox(path, node="rr-01", readings_per_envelope=1, max_readings=2) as box:
        box.append(reading(6))
        assert box.commit() == [6]


# --- hand-outs and receipts -----------------------------------------------------------------


def test_a_handed_out_row_is_due_again_only_after_resend_after(
    outbox: Outbox, clock: Clock
) -> None:
    outbox.extend(reading(i) for i in range(7))
    outbox.commit()
    clock.now = 1_100.0
    first = outbox.due(now=clock.now, resend_after=30, limit_readings=100)
    assert [r.seq for r in first] == [1, 2]
    outbox.mark_sent([1])
    assert [r.seq for r in outbox.due(now=1_130.0, resend_after=30, limit_readings=100)] == [2]
    again = outbox.due(now=1_130.5, resend_after=30, limit_readings=100)
    assert [(r.seq, r.attempts) for r in again] == [(1, 1), (2, 0)]
    clock.now = 1_131.0
    outbox.mark_sent([1, 2])
    stats = outbox.stats()
    assert outbox.due(now=1_150.0, resend_after=30, limit_readings=100) == []
    assert [r.attempts for r in outbox.due(now=1_200.0, resend_after=30, limit_readings=100)] == [
        2,
        1,
    ]
    assert stats.sent == 5 + 5 + 2  # resends count again


def test_due_stops_at_limit_readings_but_returns_at_least_one_row(outbox: Outbox) -> None:
    outbox.extend(reading(i) for i in range(15))
    outbox.commit()
    assert [r.seq for r in outbox.due(now=2e3, resend_after=30, limit_readings=12)] == [1, 2]
    assert [r.seq for r in outbox.due(now=2e3, resend_after=30, limit_readings=3)] == [1]
    assert [r.seq for r in outbox.due(now=2e3, resend_after=30, limit_readings=15)] == [1, 2, 3]


def test_due_returns_stale_and_never_sent_rows_in_seq_order(outbox: Outbox, clock: Clock) -> None:
    outbox.extend(reading(i) for i in range(20))
    outbox.commit()
    outbox.mark_sent([3])
    clock.now = 1_050.0
    outbox.mark_sent([1])
    rows = outbox.due(now=1_040.0, resend_after=30, limit_readings=100)
    assert [r.seq for r in rows] == [2, 3, 4]


def test_due_filters_by_created_at_window(outbox: Outbox, clock: Clock) -> None:
    for t in (100.0, 200.0, 300.0):
        clock.now = t
        outbox.append(reading(int(t)))
        outbox.commit()

    def seqs(**window: float) -> list[int]:
        return [r.seq for r in outbox.due(now=1e4, resend_after=30, limit_readings=99, **window)]

    assert seqs(created_since=200.0) == [2, 3]
    assert seqs(created_before=200.0) == [1]
    assert seqs(created_since=150.0, created_before=300.0) == [2]


def test_forget_sent_makes_every_held_row_due_again(outbox: Outbox) -> None:
    outbox.extend(reading(i) for i in range(10))
    outbox.commit()
    outbox.mark_sent([1, 2])
    assert outbox.due(now=1_001.0, resend_after=30, limit_readings=100) == []
    outbox.forget_sent()
    rows = outbox.due(now=1_001.0, resend_after=30, limit_readings=100)
    assert [(r.seq, r.attempts) for r in rows] == [(1, 1), (2, 1)]


def test_receipt_deletes_the_covered_rows_of_partial_ranges(outbox: Outbox) -> None:
    outbox.extend(reading(i) for i in range(23))  # rows of 5, 5, 5, 5, 3
    outbox.commit()
    removed = outbox.receipt(outbox.stream, [(2, 3), (5, 9)])
    stats = outbox.stats()
    assert removed == 5 + 5 + 3
    assert held_seqs(outbox) == [1, 4]
    assert (stats.receipted, stats.pending_readings, stats.pending_rows) == (13, 10, 2)
    assert outbox.receipt(outbox.stream, [(2, 3)]) == 0  # a repeated receipt changes nothing


def test_receipt_for_another_stream_is_ignored_and_logged(outbox: Outbox) -> None:
    outbox.extend(reading(i) for i in range(5))
    outbox.commit()
    with structlog.testing.capture_logs() as logs:
        assert outbox.receipt("0" * 32, [(1, 1)]) == 0
    assert held_seqs(outbox) == [1]
    assert outbox.stats().receipted == 0
    (event,) = logs
    assert event["log_level"] == "warning"
    assert event["receipt_stream"] == "0" * 32
    assert event["stream"] == outbox.stream


def test_receipt_with_a_backwards_range_is_an_error(outbox: Outbox) -> None:
    with pytest.raises(OutboxError, match=r"\[5, 2\]"):
        outbox.receipt(outbox.stream, [(5, 2)])


def test_due_reads_an_index_not_every_held_row(path: Path) -> None:
    with Outbox(path, node="rr-01", readings_per_envelope=1) as box:
        box.extend(reading(i) for i in range(20_000))
        box.commit()
        box.mark_sent(list(range(1, 19_990)))
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        box._conn.set_progress_handler(count, 1)
        rows = box.due(now=1e10 - 1, resend_after=1e10, limit_readings=100)
        box._conn.set_progress_handler(None, 1)
    assert [r.seq for r in rows] == list(range(19_990, 20_001))
    # A scan of 20,000 rows costs well over 100,000 SQLite VM steps; the index a few thousand.
    assert steps < 20_000


# --- stats ----------------------------------------------------------------------------------


def test_read_stats_sees_an_open_outbox_from_a_second_connection(
    outbox: Outbox, path: Path
) -> None:
    outbox.extend(reading(i) for i in range(12))
    outbox.commit()
    outbox.mark_sent([1])
    outbox.receipt(outbox.stream, [(1, 1)])
    outbox.append(reading(12))  # buffered only: not yet accepted
    stats = Outbox.read_stats(path)
    assert stats == OutboxStats(
        node="rr-01",
        stream=outbox.stream,
        last_seq=3,
        pending_rows=2,
        pending_readings=7,
        oldest_pending_at=1_000.0,
        produced=12,
        sent=5,
        receipted=5,
        dropped=0,
    )
    assert stats == outbox.stats()


def test_read_stats_works_from_another_process(outbox: Outbox, path: Path) -> None:
    outbox.extend(reading(i) for i in range(7))
    outbox.commit()
    code = (
        "import json, sys; from pathlib import Path; from edge.outbox import Outbox; "
        "print(json.dumps(Outbox.read_stats(Path(sys.argv[1])).to_json(now=1010.0)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, check=True, timeout=60
    )
    got = json.loads(out.stdout)
    assert got["produced"] == 7
    assert got["pending_rows"] == 2
    assert got["oldest_pending_age_s"] == 10.0


def test_stats_to_json_adds_the_age_of_the_oldest_pending_row(outbox: Outbox) -> None:
    assert outbox.stats().to_json(now=5.0)["oldest_pending_age_s"] is None
    outbox.append(reading(0))
    outbox.commit()
    doc = outbox.stats().to_json(now=1_042.5)
    assert doc["oldest_pending_age_s"] == 42.5
    assert doc["node"] == "rr-01"
    json.dumps(doc)


def test_read_stats_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="no outbox at"):
        Outbox.read_stats(tmp_path / "nope.sqlite")


def test_read_stats_of_a_file_that_is_not_an_outbox_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all, just text\n" * 100)
    with pytest.raises(OutboxError, match="not a machikado outbox"):
        Outbox.read_stats(junk)


# --- opening --------------------------------------------------------------------------------


def test_a_corrupt_file_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "outbox.sqlite"
    junk.write_bytes(os.urandom(8192))
    with pytest.raises(OutboxError, match=r"not a machikado outbox \(not an SQLite file"):
        Outbox(junk, node="rr-01")


def test_a_foreign_sqlite_file_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    foreign = tmp_path / "other.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = foreign.read_bytes()
    with pytest.raises(OutboxError, match="not a machikado outbox"):
        Outbox(foreign, node="rr-01")
    with pytest.raises(OutboxError, match="not a machikado outbox"):
        Outbox.read_stats(foreign)
    assert foreign.read_bytes() == before


def test_an_outbox_of_another_node_is_refused(path: Path) -> None:
    with Outbox(path, node="rr-01"):
        pass
    with pytest.raises(OutboxError, match="belongs to node 'rr-01', not 'rr-02'"):
        Outbox(path, node="rr-02")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"readings_per_envelope": 0}, "readings_per_envelope"),
        ({"readings_per_envelope": 501}, "readings_per_envelope"),
        ({"max_readings": 0}, "max_readings"),
        ({"when_full": "drop_all"}, "when_full"),
        ({"node": "RR 01"}, "node id"),
    ],
)
def test_bad_options_name_what_is_wrong(
    path: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(OutboxError, match=message):
        Outbox(path, **{"node": "rr-01", **options})  # type: ignore[arg-type]


def test_close_commits_what_is_buffered_and_is_idempotent(path: Path) -> None:
    box = Outbox(path, node="rr-01")
    box.extend(reading(i) for i in range(3))
    box.close()
    box.close()
    with pytest.raises(OutboxError, match="closed"):
        box.append(reading(3))
    assert Outbox.read_stats(path).produced == 3


# --- durability -----------------------------------------------------------------------------

_WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
import structlog
from edge.outbox import Outbox
from protocol import Reading

structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
box = Outbox(Path(sys.argv[1]), node="rr-01", readings_per_envelope=3)
i = 0
while True:
    for _ in range(1 + i % 4):
        box.append(Reading(m="visit", at=datetime.now(UTC), fields={"i": i}))
        i += 1
    for seq in box.commit():
        sys.stdout.write(f"{seq}\\n")
    sys.stdout.flush()
"""


def test_every_committed_seq_survives_kill_9_and_none_is_reused(path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    lines: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    printed: list[int] = []
    try:
        while len(printed) < 200:
            line = lines.get(timeout=60)
            if line.endswith(b"\n"):
                printed.append(int(line))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        reader.join(timeout=60)
    while not lines.empty():
        line = lines.get_nowait()
        if line.endswith(b"\n"):
            printed.append(int(line))
    assert proc.returncode == -signal.SIGKILL

    with Outbox(path, node="rr-01", readings_per_envelope=3) as box:
        rows = box.due(now=1e12, resend_after=30, limit_readings=10**9)
        stats = box.stats()
        box.append(Reading(m="visit", at=BASE, fields={"i": -1}))
        next_seq = box.commit()
    seqs = [r.seq for r in rows]
    n = len(seqs)
    assert seqs == list(range(1, n + 1))
    assert set(printed) <= set(seqs)
    assert printed == list(range(1, len(printed) + 1))
    assert stats.last_seq == n
    assert stats.produced == sum(r.n_readings for r in rows)
    assert next_seq == [n + 1]
