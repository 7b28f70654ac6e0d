"""The collector's one-pass line path writes exactly what the full path writes, or declines."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.collector.intake import Accepted, Intake
from cloud.collector.lines import DataLines, LineWriter
from cloud.collector.points import envelope_lines
from cloud.fleet import Assignment
from protocol import InvalidMessage, Reading, Topics, encode_envelope, encode_readings
from protocol.codec import parse_envelope_lean, time_us
from protocol.limits import Limits
from tests.cloud.test_lean_points import FLEET, WHERE
from tests.cloud.test_lean_points import _envelopes as valid_envelopes
from tests.protocol.test_fast_parse import envelopes as hostile_envelopes

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
#: A window as wide as it can be while every time in it is one InfluxDB stores (1677-2262).
WIDE = Limits(max_future_skew=timedelta(days=365 * 200), max_age=timedelta(days=365 * 300))
LIMITS = (Limits(), WIDE)
#: One writer per limits for the whole run: shapes it learnt from earlier messages must not
#: let a later bad one through.
SHARED = {limits: LineWriter(limits) for limits in LIMITS}

_received = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def _full_path(
    payload: bytes, node: str, limits: Limits, where: Assignment, received_at: datetime
) -> DataLines | None:
    """What the full way (parse, then lines from the lean values) writes; None if it would not."""
    try:
        env = parse_envelope_lean(payload, topic_node=node, now=NOW, limits=limits)
    except InvalidMessage:
        return None
    lines = envelope_lines(env, where, time_us(received_at))
    if lines is None:
        return None
    return DataLines(env.stream, env.seq, lines, len(env.readings) + 1)


def _check(payload: bytes, node: str, limits: Limits, received_at: datetime) -> bool:
    reference = _full_path(payload, node, limits, WHERE, received_at)
    taken = False
    for writer in (LineWriter(limits), SHARED[limits]):
        got = writer.lines(payload, node, WHERE, time_us(NOW), time_us(received_at))
        if got is not None:
            assert got == reference
            taken = True
    return taken


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_envelopes(), st.sampled_from(["rr-01", "rr-02"]), st.sampled_from(LIMITS), _received)
def test_hostile_messages_are_written_as_the_full_path_writes_them_or_declined(
    payload: bytes, node: str, limits: Limits, received_at: datetime
) -> None:
    _check(payload, node, limits, received_at)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_envelopes(), st.sampled_from(LIMITS), _received)
def test_valid_messages_are_written_as_the_full_path_writes_them(
    payload: bytes, limits: Limits, received_at: datetime
) -> None:
    _check(payload, "rr-01", limits, received_at)


def _plain(*fields: dict[str, object], tags: dict[str, str] | None = None) -> bytes:
    readings = [
        Reading(m="air", at=NOW - timedelta(seconds=i), sensor="s1", tags=tags or {}, fields=f)
        for i, f in enumerate(fields)
    ]
    return encode_envelope(
        node="rr-01", stream="s" * 16, seq=7, sent_at=NOW, readings_json=encode_readings(readings)
    )


def test_a_plain_envelope_takes_the_line_path() -> None:
    payload = _plain({"t": 21.5, "n": 3, "ok": True, "note": 'a "b"'}, tags={"floor": "2F"})
    assert _check(payload, "rr-01", Limits(), NOW)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("9223372036854775808", "integer beyond int64"),
        ("1e400", "infinite once parsed"),
        ('"' + "x" * 257 + '"', "string longer than the contract allows"),
        ('"a\\u0085b"', "C1 control character"),
        ("[1]", "a list"),
        ("null", "null"),
    ],
)
def test_a_bad_value_after_its_shape_was_learnt_is_declined(value: str, why: str) -> None:
    writer = LineWriter()
    good = _plain({"t": 1.0})
    assert writer.lines(good, "rr-01", WHERE, time_us(NOW), time_us(NOW)) is not None
    bad = good.replace(b'"t":1.0', b'"t":' + value.encode())
    assert bad != good
    assert writer.lines(bad, "rr-01", WHERE, time_us(NOW), time_us(NOW)) is None, why


def test_the_collector_writes_a_plain_envelope_by_the_line_path_and_points_on_demand() -> None:
    take = Intake(Topics("machikado"), FLEET)
    payload = _plain({"t": 21.5}, {"t": math.pi})
    out = take("machikado/v1/rr-01/data", payload, NOW)
    assert isinstance(out, Accepted)
    assert out.lines is not None
    assert len(out.points) == 3
    assert [p.fields for p in out.points[:2]] == [{"t": 21.5}, {"t": math.pi}]
    assert out.points[2].measurement == "link"


def test_a_shape_learnt_for_one_site_is_not_used_for_another() -> None:
    writer = LineWriter()
    payload = _plain({"t": 1.0})
    elsewhere = Assignment(trial="t2", site="s2", kind="restroom")
    for where in (WHERE, elsewhere, WHERE):
        got = writer.lines(payload, "rr-01", where, time_us(NOW), time_us(NOW))
        assert got == _full_path(payload, "rr-01", Limits(), where, NOW)
