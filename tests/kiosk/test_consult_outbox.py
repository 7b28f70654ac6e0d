"""The outbox's durable queue of messages other than readings (a kiosk's consult requests)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.errors import OutboxError
from edge.outbox import SCHEMA_VERSION, Outbox
from protocol.messages import Reading


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(tmp_path: Path, clock: Clock) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite", node="k-01", clock=clock)


def test_a_message_waits_until_its_key_is_acknowledged_even_across_reopen(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path, node="k-01") as first:
        first.put_message("consult/request", b"sealed-1", key="4821-8")
    with Outbox(path, node="k-01") as again:
        (message,) = again.due_messages(now=2e9, resend_after=30, limit=10)
        assert (message.topic_suffix, message.payload, message.key) == (
            "consult/request",
            b"sealed-1",
            "4821-8",
        )
        assert again.ack_message("4821-8") is True
        assert again.due_messages(now=2e9, resend_after=30, limit=10) == []
        assert again.message_keys() == []
        assert again.ack_message("4821-8") is False


def test_a_sent_message_is_due_again_only_after_resend_after(outbox: Outbox, clock: Clock) -> None:
    outbox.put_message("consult/request", b"x", key="a")
    (m,) = outbox.due_messages(now=clock.now, resend_after=30, limit=10)
    outbox.mark_messages_sent([m.id])
    assert outbox.due_messages(now=clock.now + 29, resend_after=30, limit=10) == []
    (again,) = outbox.due_messages(now=clock.now + 31, resend_after=30, limit=10)
    assert again.attempts == 1


def test_forget_sent_makes_held_messages_due_again(outbox: Outbox, clock: Clock) -> None:
    outbox.put_message("consult/request", b"x", key="a")
    outbox.mark_messages_sent([m.id for m in outbox.due_messages(now=0, resend_after=1, limit=9)])
    assert outbox.due_messages(now=clock.now, resend_after=30, limit=10) == []
    outbox.forget_sent()
    assert [m.key for m in outbox.due_messages(now=clock.now, resend_after=30, limit=10)] == ["a"]


def test_due_messages_come_oldest_first_up_to_the_limit(outbox: Outbox) -> None:
    for key in ("a", "b", "c"):
        outbox.put_message("consult/request", key.encode(), key=key)
    assert [m.key for m in outbox.due_messages(now=2e9, resend_after=30, limit=2)] == ["a", "b"]
    assert outbox.message_keys() == ["a", "b", "c"]


def test_messages_use_no_seq_and_leave_the_reading_counters_alone(outbox: Outbox) -> None:
    outbox.put_message("consult/request", b"x", key="a")
    outbox.append(Reading(m="kiosk_session", at=datetime.now(UTC), fields={"duration_s": 1.0}))
    assert outbox.commit() == [1]
    stats = outbox.stats()
    assert (stats.pending_rows, stats.pending_readings, stats.produced) == (1, 1, 1)
    outbox.ack_message("a")
    assert outbox.stats().pending_rows == 1


def test_a_second_message_with_a_held_key_is_refused(outbox: Outbox) -> None:
    outbox.put_message("consult/request", b"x", key="a")
    with pytest.raises(OutboxError, match="already holds a message with key 'a'"):
        outbox.put_message("consult/request", b"y", key="a")
    assert [m.payload for m in outbox.due_messages(now=2e9, resend_after=1, limit=5)] == [b"x"]


@pytest.mark.parametrize(
    ("suffix", "key", "reason"),
    [
        ("consult/#", "a", "topic suffix"),
        ("/consult", "a", "topic suffix"),
        ("consult//request", "a", "topic suffix"),
        ("consult/request", "", "key"),
        ("consult/request", "a\nb", "key"),
    ],
)
def test_bad_message_topics_and_keys_are_refused_with_a_reason(
    outbox: Outbox, suffix: str, key: str, reason: str
) -> None:
    with pytest.raises(OutboxError, match=reason):
        outbox.put_message(suffix, b"x", key=key)


def test_a_message_larger_than_the_wire_limit_is_refused(outbox: Outbox) -> None:
    with pytest.raises(OutboxError, match="larger than the wire contract"):
        outbox.put_message("consult/request", b"x" * (256 * 1024 + 1), key="a")


def test_a_version_1_outbox_gains_the_message_table_and_keeps_its_envelopes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path, node="k-01") as box:
        box.append(Reading(m="visit", at=datetime.now(UTC), fields={"n": 1}))
        box.commit()
        stream = box.stream
    conn = sqlite3.connect(path)  # make it what the previous release wrote
    conn.execute("DROP TABLE message")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    assert Outbox.read_stats(path).pending_rows == 1  # still readable as it is
    with Outbox(path, node="k-01") as box:
        assert box.stream == stream
        assert box.stats().pending_rows == 1
        box.put_message("consult/request", b"x", key="a")
        assert box.message_keys() == ["a"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    conn.close()


def test_an_outbox_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    Outbox(path, node="k-01").close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    with pytest.raises(OutboxError, match="schema version 3"):
        Outbox(path, node="k-01")


def test_messages_that_ran_out_are_dropped_and_never_due_again_even_after_reopen(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path, node="k-01", clock=clock) as outbox:
        outbox.put_message("consult/request", b"old", key="1111-1")
        clock.now += 600
        outbox.put_message("consult/request", b"newer", key="2222-2")
        outbox.put_message("other/thing", b"old too", key="x")
        clock.now += 1300
        # A TTL of 30 minutes: the first request (31 min 40 s old) ran out, the second not.
        dropped = outbox.drop_messages(
            topic_suffix="consult/request", created_before=clock.now - 1800
        )
        assert dropped == ["1111-1"]
        assert outbox.message_keys() == ["2222-2", "x"], "other topics and newer ones stay"
        assert (
            outbox.drop_messages(topic_suffix="consult/request", created_before=clock.now - 1800)
            == []
        )
    with Outbox(path, node="k-01", clock=clock) as again:
        due = again.due_messages(now=clock.now, resend_after=30, limit=10)
        assert [m.key for m in due] == ["2222-2", "x"]
