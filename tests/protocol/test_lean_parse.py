"""The lean parse answers exactly as parse_envelope does: same messages, values and reasons."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import InvalidMessage, Reading, encode_envelope, encode_readings, parse_envelope
from protocol.codec import (
    LeanEnvelope,
    _time,
    _time_us,
    envelope_fast,
    envelope_lean,
    lean_of,
    parse_envelope_lean,
    time_us,
)
from protocol.limits import Limits
from tests.protocol.test_fast_parse import _times, envelopes

STREAM = "0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def _outcome(parse: Any, payload: bytes, **kw: Any) -> LeanEnvelope | tuple[str, ...]:
    try:
        got = parse(payload, **kw)
    except InvalidMessage as exc:
        return tuple(exc.reasons)
    return got if isinstance(got, LeanEnvelope) else lean_of(got)


def _same_values(a: LeanEnvelope, b: LeanEnvelope) -> None:
    assert a == b
    for (*_, fa), (*_, fb) in zip(a.readings, b.readings, strict=True):
        # 1 == 1.0 == True in Python: the types must agree too, and floats to the bit.
        assert [(type(v), repr(v)) for v in fa.values()] == [
            (type(v), repr(v)) for v in fb.values()
        ]


#: The generated times run from year 1 to 9999: with the contract's limits nearly all are out of
#: the accepted window; with these (now in 5000, the window every year there is) none is.
_MIDDLE = datetime(5000, 1, 1, tzinfo=UTC)
_WIDE = Limits(
    max_future_skew=datetime(9999, 12, 31, tzinfo=UTC) - _MIDDLE,
    max_age=_MIDDLE - datetime(1, 1, 1, tzinfo=UTC),
)
_CLOCKS = st.sampled_from([(NOW, Limits()), (_MIDDLE, _WIDE), (_MIDDLE, _WIDE)])


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes(), st.sampled_from(["rr-01", "rr-02", None]), _CLOCKS)
def test_lean_parse_accepts_and_refuses_what_parse_envelope_does(
    payload: bytes, topic_node: str | None, clock: tuple[datetime, Limits]
) -> None:
    now, limits = clock
    kw = {"topic_node": topic_node, "now": now, "limits": limits}
    lean = _outcome(parse_envelope_lean, payload, **kw)
    reference = _outcome(parse_envelope, payload, **kw)
    if isinstance(reference, LeanEnvelope):
        assert isinstance(lean, LeanEnvelope)
        _same_values(lean, reference)
    else:
        assert lean == reference


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes())
def test_lean_path_decides_what_the_fast_path_decides_with_equal_values(payload: bytes) -> None:
    lean, fast = envelope_lean(payload), envelope_fast(payload)
    assert (lean is None) == (fast is None)
    if lean is not None and fast is not None:
        _same_values(lean, lean_of(fast))


@settings(max_examples=1000, deadline=None)
@given(_times)
def test_times_read_as_microseconds_exactly_when_the_contract_format_parses(value: Any) -> None:
    at = _time(value)
    us = _time_us(value)
    assert (us is None) == (at is None)
    if at is not None:
        assert us == time_us(at)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-26T23:59:60.000000Z",
        "2026-11-26T24:00:00.000000Z",
        "2026-02-29T00:00:00.000000Z",
        "0000-01-01T00:00:00.000000Z",
    ],
)
def test_impossible_times_are_not_read_even_after_their_minute_was_seen(value: str) -> None:
    _time_us(value[:17] + "00.000000Z")  # the minute's first second, if it exists, is cached
    assert _time_us(value) is None


@pytest.mark.parametrize(
    "fraction",
    ["12345xZ", "12 456Z", "１２３４５６Z", "123456z", "-12345Z", "+12345Z", "1_2345Z", "²23456Z"],
)
def test_a_bad_fraction_is_not_read_after_its_second_was_seen(fraction: str) -> None:
    second = "2026-11-26T07:00:05."
    assert _time_us(second + "000000Z") == time_us(datetime(2026, 11, 26, 7, 0, 5, tzinfo=UTC))
    assert _time_us(second + fraction) is None
    assert _time(second + fraction) is None


def _envelope(*ats: datetime, sent_at: datetime = NOW) -> bytes:
    readings = [Reading(m="visit", at=at, fields={"n": i}) for i, at in enumerate(ats)]
    return encode_envelope(
        node="rr-01",
        stream=STREAM,
        seq=3,
        sent_at=sent_at,
        readings_json=encode_readings(readings),
    )


def test_readings_too_far_ahead_or_too_old_get_parse_envelopes_reasons() -> None:
    limits = Limits()
    payload = _envelope(
        NOW,
        NOW + limits.max_future_skew + timedelta(microseconds=1),
        NOW - limits.max_age - timedelta(microseconds=1),
        sent_at=NOW + timedelta(hours=1),
    )
    with pytest.raises(InvalidMessage) as lean:
        parse_envelope_lean(payload, topic_node="rr-01", now=NOW)
    with pytest.raises(InvalidMessage) as reference:
        parse_envelope(payload, topic_node="rr-01", now=NOW)
    assert lean.value.reasons == reference.value.reasons
    assert len(lean.value.reasons) == 3


def test_readings_at_the_edges_of_the_accepted_skew_are_taken() -> None:
    limits = Limits()
    newest, oldest = NOW + limits.max_future_skew, NOW - limits.max_age
    env = parse_envelope_lean(_envelope(newest, oldest, sent_at=newest), now=NOW)
    assert [r[1] for r in env.readings] == [time_us(newest), time_us(oldest)]
    assert env.sent_at_us == time_us(newest)


def test_a_time_with_an_offset_is_taken_through_the_models_in_utc() -> None:
    data = json.loads(_envelope(NOW))
    data["readings"][0]["at"] = "2026-11-26T15:59:00.5+09:00"
    env = parse_envelope_lean(json.dumps(data).encode(), topic_node="rr-01", now=NOW)
    assert env.readings[0][1] == time_us(datetime(2026, 11, 26, 6, 59, 0, 500_000, tzinfo=UTC))


def test_a_topic_naming_another_node_is_refused_with_parse_envelopes_reason() -> None:
    with pytest.raises(InvalidMessage) as exc:
        parse_envelope_lean(_envelope(NOW), topic_node="rr-02", now=NOW)
    assert exc.value.reasons == ("node: payload says 'rr-01' but the topic says 'rr-02'",)


def test_an_oversized_payload_is_refused_with_its_size() -> None:
    payload = _envelope(NOW)
    with pytest.raises(InvalidMessage) as exc:
        parse_envelope_lean(payload, now=NOW, limits=Limits(max_payload_bytes=len(payload) - 1))
    assert exc.value.reasons == (f"payload is {len(payload)} bytes, more than {len(payload) - 1}",)
