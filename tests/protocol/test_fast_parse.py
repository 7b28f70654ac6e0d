"""The fast path of parse_envelope answers exactly as the models do, or leaves it to them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol import Envelope, Reading, encode_envelope, encode_readings
from protocol.codec import envelope_fast

STREAM = "0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)

# Each part is mostly valid and sometimes one step over a rule's edge, so that most messages
# are valid or wrong in one place only: the cases where the two paths could disagree.


def _mostly(valid: st.SearchStrategy[Any], edge: st.SearchStrategy[Any]) -> Any:
    """``valid`` 29 times in 30, else ``edge``."""
    return st.integers(0, 29).flatmap(lambda i: edge if i == 17 else valid)


_keys = _mostly(
    st.sampled_from(["n", "value", "ok", "stall", "x" * 64, "Time", "sensor_2"]),
    st.sampled_from(
        [
            *("time", "node", "sensor", "kind", "stream", "link", "fleet_state"),
            *("1bad", "bad key", "x" * 65, "", "k\\"),
        ]
    ),
)
_texts = _mostly(
    st.one_of(
        st.sampled_from(["a", "stall-1", "つくば駅", "a b,c=d", 'q"', "a\\b", "x" * 128, "\u00a0"]),
        st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), min_size=1, max_size=8),
    ),
    st.one_of(
        st.sampled_from(["", "C:\\", "\\", "x" * 129, "a\x00", "a\x7f", "\x85", "\u200b", "\n"]),
        st.text(max_size=8),
        st.integers(),
        st.none(),
    ),
)
_times = _mostly(
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
    ).map(lambda at: at.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"),
    st.one_of(
        st.sampled_from(
            [
                "2026-11-26T06:59:00Z",
                "2026-11-26T15:59:00.123456+09:00",
                "2026-11-26T06:59:00.123456",
                "2026-02-30T06:59:00.123456Z",
                "2026-11-26T24:00:00.000000Z",
                "2026-11-26T23:59:60.000000Z",
                "0000-01-01T00:00:00.000000Z",
                "2026-W48-4T06:59:00.123456Z",
                "2026-11-26t06:59:00.123456z",
                "2026-11-26 06:59:00.123456Z",
                "２０２６-11-26T06:59:00.123456Z",
            ]
        ),
        st.integers(min_value=0, max_value=2**40),
        st.none(),
    ),
)
_field_values = _mostly(
    st.one_of(
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        _texts,
        st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), max_size=300),
    ),
    st.one_of(
        st.sampled_from([2**63, -(2**63) - 1, 2**64, float("nan"), float("inf"), "x" * 257]),
        st.none(),
        st.lists(st.integers(), max_size=2),
    ),
)


@st.composite
def readings(draw: st.DrawFn) -> Any:
    r: dict[str, Any] = {"m": draw(_keys), "at": draw(_times), "fields": {}}
    if draw(st.booleans()):
        r["sensor"] = draw(_texts)
    if draw(st.booleans()):
        r["tags"] = draw(_mostly(st.dictionaries(_keys, _texts, max_size=3), st.none()))
    r["fields"] = draw(
        _mostly(st.dictionaries(_keys, _field_values, min_size=1, max_size=3), st.none())
    )
    for key in draw(st.lists(st.sampled_from(["m", "at", "fields"]), max_size=1)):
        if draw(st.integers(0, 9)) == 5:
            r.pop(key)
    if draw(st.integers(0, 19)) == 11:
        r["extra"] = 1
    return draw(_mostly(st.just(r), st.sampled_from([[r], 1, None])))


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    e: dict[str, Any] = {
        "v": draw(_mostly(st.just(1), st.sampled_from([2, True, 1.0, "1"]))),
        "node": draw(
            _mostly(st.just("rr-01"), st.sampled_from(["RR-01", "rr-01\n", "", "a" * 64]))
        ),
        "stream": draw(_mostly(st.just(STREAM), st.sampled_from(["short", "a/b" * 4, "x" * 65]))),
        "seq": draw(
            _mostly(
                st.integers(min_value=1, max_value=2**63 - 1),
                st.sampled_from([0, -1, 2**63, 17.0, True, "17"]),
            )
        ),
        "sent_at": draw(_times),
        "readings": draw(st.lists(readings(), min_size=1, max_size=4)),
    }
    if draw(st.integers(0, 9)) == 5:
        e.pop(draw(st.sampled_from(sorted(e))))
    if draw(st.integers(0, 19)) == 11:
        e["extra"] = 1
    return json.dumps(e, ensure_ascii=draw(st.booleans())).encode()


def _slow(payload: bytes) -> Envelope | None:
    try:
        return Envelope.model_validate_json(payload)
    except ValidationError:
        return None


def _same(fast: Envelope, slow: Envelope) -> None:
    assert fast == slow
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.sent_at.tzinfo == slow.sent_at.tzinfo == UTC
    for a, b in zip(fast.readings, slow.readings, strict=True):
        assert a.model_fields_set == b.model_fields_set
        assert a.at.tzinfo == b.at.tzinfo == UTC
        assert [type(v) for v in a.fields.values()] == [type(v) for v in b.fields.values()]
        assert [repr(v) for v in a.fields.values()] == [repr(v) for v in b.fields.values()]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes())
def test_fast_path_accepts_only_what_the_models_accept_with_equal_values(payload: bytes) -> None:
    fast = envelope_fast(payload)
    if fast is not None:
        slow = _slow(payload)
        assert slow is not None, f"fast path accepted what the models refuse: {payload!r}"
        _same(fast, slow)


def _plain(n: int) -> bytes:
    rs = [
        Reading(
            m="visit",
            at=NOW,
            sensor="stall-1",
            tags={"stall": "1", "where": "つくば駅 A,B=C"},
            fields={"n": n, "d": 1.5, "ok": True, "s": 'a "q" \\ b'},
        )
        for n in range(n)
    ]
    return encode_envelope(
        node="rr-01", stream=STREAM, seq=7, sent_at=NOW, readings_json=encode_readings(rs)
    )


def test_plainly_valid_envelopes_take_the_fast_path_with_the_models_values() -> None:
    for payload in (_plain(1), _plain(10), _plain(500)):
        fast = envelope_fast(payload)
        assert fast is not None
        slow = _slow(payload)
        assert slow is not None
        _same(fast, slow)


def test_duplicate_keys_and_surrogates_are_decided_as_the_models_decide() -> None:
    base = _plain(1).decode()
    for payload in (
        base.replace('"node":"rr-01"', '"node":"XX","node":"rr-01"').encode(),
        base.replace('"node":"rr-01"', '"node":"rr-01","node":"XX"').encode(),
        base.replace('"stall":"1"', '"stall":"1","stall":"2"').encode(),
        base.replace('"stall":"1"', '"stall":"\\ud800"').encode(),
        base.replace('"stall":"1"', '"stall":"\\ud83d\\ude00"').encode(),
        base.replace('"d":1.5', '"d":1e400').encode(),
        base.replace('"d":1.5', '"d":NaN').encode(),
    ):
        fast, slow = envelope_fast(payload), _slow(payload)
        if fast is not None:
            assert slow is not None, payload
            _same(fast, slow)
