"""The wire contract v1: what a valid message is, and that every fault is named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from protocol import (
    Envelope,
    InvalidMessage,
    Reading,
    Receipt,
    encode_envelope,
    encode_readings,
    parse_envelope,
    parse_message,
    to_ranges,
)
from protocol.codec import envelope_fast, parse_envelope_lean
from protocol.limits import DEFAULT_LIMITS

NOW = datetime(2026, 11, 26, 7, 0, 0, tzinfo=UTC)
STREAM = "0123456789abcdef0123456789abcdef"


def reading(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "m": "visit",
        "at": "2026-11-26T06:59:00.123456Z",
        "sensor": "stall-1",
        "tags": {"stall": "1"},
        "fields": {"duration_s": 182.5, "event": "end", "occupied": False, "count": 3},
    }
    base.update(over)
    return base


def envelope(**over: object) -> bytes:
    base: dict[str, object] = {
        "v": 1,
        "node": "rr-01",
        "stream": STREAM,
        "seq": 17,
        "sent_at": "2026-11-26T06:59:30.000001Z",
        "readings": [reading()],
    }
    base.update(over)
    return json.dumps(base, ensure_ascii=False).encode()


def reasons(payload: bytes, **kw: object) -> list[str]:
    with pytest.raises(InvalidMessage) as err:
        parse_envelope(payload, now=NOW, **kw)  # type: ignore[arg-type]
    return list(err.value.reasons)


def test_valid_envelope_keeps_every_value_and_type() -> None:
    env = parse_envelope(envelope(), topic_node="rr-01", now=NOW)
    r = env.readings[0]
    assert r.fields == {"duration_s": 182.5, "event": "end", "occupied": False, "count": 3}
    assert type(r.fields["count"]) is int
    assert type(r.fields["occupied"]) is bool
    assert r.at == datetime(2026, 11, 26, 6, 59, 0, 123456, tzinfo=UTC)


def test_times_are_written_in_utc_with_microseconds() -> None:
    jst = datetime(2026, 11, 26, 16, 0, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Tokyo")
    )
    r = Reading(m="x", at=jst, fields={"v": 1.0})
    assert json.loads(r.model_dump_json())["at"] == "2026-11-26T16:00:00.000000Z"


def test_encoded_envelope_parses_back_to_the_same_readings() -> None:
    rs = [
        Reading(m="health_check", at=NOW, tags={"device": "scale"}, fields={"weight_kg": 61.25}),
        Reading(m="note", at=NOW, fields={"text": 'つくば駅 トイレ, "A"=1 \\'}),
    ]
    payload = encode_envelope(
        node="rr-01", stream=STREAM, seq=3, sent_at=NOW, readings_json=encode_readings(rs)
    )
    env = parse_envelope(payload, topic_node="rr-01", now=NOW)
    assert env.readings == rs
    assert (env.seq, env.stream, env.node) == (3, STREAM, "rr-01")


def test_every_fault_is_reported_not_just_the_first() -> None:
    bad = reading(
        m="1bad",
        tags={"node": "spoof", "ok": ""},
        fields={"n": float("nan"), "big": 2**64, "s": "a\x01b", "time": 1},
    )
    got = reasons(envelope(seq=0, readings=[bad]).replace(b"NaN", b"NaN"))
    text = "\n".join(got)
    for expected in [
        "seq",
        "readings[0].m",
        "tag key 'node' is reserved",
        "readings[0].tags.ok",
        "readings[0].fields.n: nan is not a finite number",
        "does not fit in 64 bits",
        "readings[0].fields.s: holds a control character",
        "field key 'time' is reserved",
    ]:
        assert expected in text, f"{expected!r} missing from {got}"


@pytest.mark.parametrize("measurement", ["link", "fleet_state"])
def test_a_measurement_the_cloud_writes_is_refused_from_a_node(measurement: str) -> None:
    payload = envelope(readings=[reading(m=measurement)])
    want = f"readings[0].m: measurement {measurement!r} is reserved for the cloud"

    assert reasons(payload) == [want]
    assert envelope_fast(payload) is None
    with pytest.raises(InvalidMessage) as err:
        parse_envelope_lean(payload, now=NOW)
    assert list(err.value.reasons) == [want]


@pytest.mark.parametrize("tag", ["kind", "stream", "node", "trial", "site", "sensor"])
def test_a_tag_the_cloud_sets_is_refused_from_a_node(tag: str) -> None:
    payload = envelope(readings=[reading(tags={tag: "forged"})])
    want = f"readings[0].tags.{tag} (the key): tag key {tag!r} is reserved for the cloud"

    assert reasons(payload) == [want]
    assert envelope_fast(payload) is None
    with pytest.raises(InvalidMessage) as err:
        parse_envelope_lean(payload, now=NOW)
    assert list(err.value.reasons) == [want]


def test_tag_value_ending_in_a_backslash_is_refused_at_the_contract() -> None:
    got = reasons(envelope(readings=[reading(tags={"path": "C:\\"}, sensor="dev\\")]))
    assert any(r.startswith("readings[0].tags.path") and "backslash" in r for r in got)
    assert any(r.startswith("readings[0].sensor") and "backslash" in r for r in got)
    parse_envelope(envelope(readings=[reading(tags={"path": "a\\b"})]), now=NOW)


def test_topic_and_payload_must_name_the_same_node() -> None:
    assert any("topic says 'rr-02'" in r for r in reasons(envelope(), topic_node="rr-02"))


def test_clock_skew_bounds_are_enforced() -> None:
    future = (NOW + DEFAULT_LIMITS.max_future_skew + timedelta(seconds=1)).isoformat()
    ancient = (NOW - DEFAULT_LIMITS.max_age - timedelta(seconds=1)).isoformat()
    got = reasons(envelope(readings=[reading(at=future), reading(at=ancient)]))
    assert any(r.startswith("readings[0].at") and "ahead" in r for r in got)
    assert any(r.startswith("readings[1].at") and "older" in r for r in got)
    ok = (NOW + DEFAULT_LIMITS.max_future_skew - timedelta(seconds=1)).isoformat()
    parse_envelope(envelope(readings=[reading(at=ok)]), now=NOW)


def test_naive_times_are_refused() -> None:
    assert any(
        "timezone" in r for r in reasons(envelope(readings=[reading(at="2026-11-26T06:00:00")]))
    )


def test_oversized_payload_is_refused_before_parsing() -> None:
    payload = envelope(readings=[reading()]) + b" " * DEFAULT_LIMITS.max_payload_bytes
    assert reasons(payload)[0].startswith("payload is")


def test_too_many_readings_fields_and_tags() -> None:
    lim = DEFAULT_LIMITS
    many = [reading()] * (lim.max_readings + 1)
    assert any("readings" in r for r in reasons(envelope(readings=many)))
    fields = {f"f{i}": i for i in range(lim.max_fields + 1)}
    tags = {f"t{i}": "x" for i in range(lim.max_tags + 1)}
    got = reasons(envelope(readings=[reading(fields=fields, tags=tags)]))
    assert any(r.startswith("readings[0].fields") for r in got)
    assert any(r.startswith("readings[0].tags") for r in got)


@pytest.mark.parametrize(
    "payload", [b"", b"not json", b"[]", b"{", b'{"v":1}', "\ud800".encode(errors="surrogatepass")]
)
def test_garbage_gets_a_reason(payload: bytes) -> None:
    assert reasons(payload)


def test_receipt_ranges_merge_and_cover() -> None:
    r = Receipt.of(STREAM, [5, 1, 2, 3, 7, 6, 10])
    assert r.ranges == [(1, 3), (5, 7), (10, 10)]
    assert [r.covers(s) for s in (1, 4, 6, 10, 11)] == [True, False, True, True, False]
    assert to_ranges([]) == []
    with pytest.raises(InvalidMessage, match="not 1 <= low <= high"):
        parse_message(Receipt, json.dumps({"v": 1, "stream": STREAM, "ranges": [[3, 2]]}).encode())


def test_envelope_model_rejects_unknown_keys() -> None:
    assert any("extra" in r.lower() for r in reasons(envelope(extra=1)))
    assert Envelope.model_fields["v"].default == 1
