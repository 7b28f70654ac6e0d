"""Encoding and validating messages on the wire.

:func:`parse_envelope` is what the cloud runs on every data message: it returns the envelope or
raises :class:`~protocol.errors.InvalidMessage` carrying every reason the message is wrong, so a
dead-letter record can say all of them at once. :func:`encode_envelope` is the node's fast path:
the outbox keeps each envelope's readings as JSON already, and sending only wraps them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeAlias, TypeGuard, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from protocol.errors import InvalidMessage
from protocol.limits import (
    CONTROL,
    DEFAULT_LIMITS,
    INT64_MAX,
    INT64_MIN,
    KEY,
    NODE_ID,
    RESERVED_FIELDS,
    RESERVED_MEASUREMENTS,
    RESERVED_TAGS,
    STREAM_ID,
    Limits,
)
from protocol.messages import Envelope, Reading, V, format_time

M = TypeVar("M", bound=BaseModel)
_T = TypeVar("_T")


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (the key)"
        else:
            out += f".{part}" if out else part
    return out or "message"


def reasons_of(exc: ValidationError) -> list[str]:
    """Turn pydantic's errors into ``where: what`` lines."""
    reasons = []
    for err in exc.errors(include_url=False, include_input=False):
        msg = err["msg"].removeprefix("Value error, ")
        reasons.append(f"{_loc(err['loc'])}: {msg}")
    return reasons


def parse_envelope(
    payload: bytes,
    *,
    topic_node: str | None = None,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Envelope:
    """Validate a data message against the contract, and the topic it came on.

    ``now`` is the receiver's clock, for the accepted skew; ``topic_node`` the node id from the
    topic, which must equal the payload's.
    """
    if len(payload) > limits.max_payload_bytes:
        raise InvalidMessage(
            [f"payload is {len(payload)} bytes, more than {limits.max_payload_bytes}"]
        )
    envelope = envelope_fast(payload)
    if envelope is None:
        try:
            envelope = Envelope.model_validate_json(payload)
        except ValidationError as exc:
            raise InvalidMessage(reasons_of(exc)) from None
    reasons: list[str] = []
    if topic_node is not None and envelope.node != topic_node:
        reasons.append(f"node: payload says {envelope.node!r} but the topic says {topic_node!r}")
    now = now or datetime.now(UTC)
    newest = now + limits.max_future_skew
    oldest = now - limits.max_age
    for i, r in enumerate(envelope.readings):
        if r.at > newest:
            reasons.append(
                f"readings[{i}].at: {format_time(r.at)} is more than "
                f"{limits.max_future_skew} ahead of the receiver's clock"
            )
        elif r.at < oldest:
            reasons.append(f"readings[{i}].at: {format_time(r.at)} is older than {limits.max_age}")
    if envelope.sent_at > newest:
        reasons.append(f"sent_at: {format_time(envelope.sent_at)} is in the future")
    if reasons:
        raise InvalidMessage(reasons)
    return envelope


# -- the fast path -------------------------------------------------------------------------------
#
# Validating through the models calls a Python function per tag and field value; a collector
# runs this on every message. ``envelope_fast`` checks the common case (every time in the
# contract's own format, every value plainly right) in one Python pass over the parsed JSON and
# builds the models without validating them again. It answers only when the models would accept
# the message with the very same values; anything else returns None and goes through the models,
# so every reason a bad message gets is still theirs, word for word. The rules it applies are the
# models' (protocol/messages.py); a change there must be made here too, and
# tests/protocol/test_fast_parse.py compares the two paths on generated messages.

_LIM = DEFAULT_LIMITS
_ENVELOPE_KEYS = frozenset(Envelope.model_fields)
_READING_KEYS = frozenset(Reading.model_fields)
#: The contract's time format; others (offsets, fewer digits) are left to the models.
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_construct = object.__setattr__


class _Seen:
    """Texts already found valid for one purpose: nodes repeat the same few names and tags.

    Bounded, so a stream of distinct hostile texts only stops it from learning more.
    """

    __slots__ = ("good", "room")

    def __init__(self, room: int = 4096) -> None:
        self.good: set[str] = set()
        self.room = room

    def learn(self, text: str) -> None:
        if len(self.good) < self.room:
            self.good.add(text)


_NAMES, _TAG_KEYS, _FIELD_KEYS = _Seen(), _Seen(), _Seen()
_SENSORS, _TAG_VALUES = _Seen(), _Seen(16_384)


def _time(value: Any) -> datetime | None:
    if type(value) is not str or not _TIME.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
#: "YYYY-MM-DDTHH:MM:SS." -> microseconds since the epoch of that second; readings of one
#: node share a few seconds, so a time costs a lookup and one int() instead of a datetime.
#: Emptied when full: times are mostly recent, and the cache must keep learning new seconds.
_SECONDS: dict[str, int] = {}
_SECONDS_ROOM = 65_536


def _time_us(value: Any) -> int | None:
    """Microseconds since the epoch of a time in the contract's format, else None.

    Accepts exactly what :func:`_time` accepts: the second through ``fromisoformat`` (date,
    hour, minute and second ranges), then six ASCII digits of microseconds and ``Z``.
    """
    if type(value) is not str or len(value) != 27 or value[26] != "Z" or not value.isascii():
        return None
    second = _SECONDS.get(value[:20])
    if second is None:
        if not _TIME.fullmatch(value):
            return None
        try:
            at = datetime.fromisoformat(value[:19] + ".000000Z")
        except ValueError:
            return None
        second = (at - _EPOCH) // _US
        if len(_SECONDS) >= _SECONDS_ROOM:
            _SECONDS.clear()
        _SECONDS[value[:20]] = second
    fraction = value[20:26]
    if not fraction.isdigit():  # ASCII (checked above), so exactly 0-9
        return None
    return second + int(fraction)


def _key_ok(key: Any, seen: _Seen, reserved: frozenset[str]) -> bool:
    if type(key) is not str or not KEY.fullmatch(key) or key in reserved:
        return False
    seen.learn(key)
    return True


def _text_ok(value: Any, max_length: int, seen: _Seen) -> bool:
    """A sensor name or tag value: 1 to ``max_length`` characters, no control, no final ``\\``."""
    if (
        type(value) is not str
        or not 0 < len(value) <= max_length
        or value[-1] == "\\"
        # isprintable() is False for every control character (and for some harmless ones,
        # which then get the exact test).
        or (not value.isprintable() and CONTROL.search(value))
    ):
        return False
    seen.learn(value)
    return True


def _fields_ok(fields: Any) -> TypeGuard[dict[str, Any]]:
    if type(fields) is not dict or not 0 < len(fields) <= _LIM.max_fields:
        return False
    good_keys = _FIELD_KEYS.good
    for key, value in fields.items():
        if key not in good_keys and not _key_ok(key, _FIELD_KEYS, RESERVED_FIELDS):
            return False
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                return False
        elif kind is int:
            if not INT64_MIN <= value <= INT64_MAX:
                return False
        elif kind is str:
            if len(value) > _LIM.max_string_field or (
                not value.isprintable() and CONTROL.search(value)
            ):
                return False
        elif kind is not bool:
            return False
    return True


def _tags_ok(tags: Any) -> bool:
    if type(tags) is not dict or len(tags) > _LIM.max_tags:
        return False
    good_keys, good_values = _TAG_KEYS.good, _TAG_VALUES.good
    for key, value in tags.items():
        if key not in good_keys and not _key_ok(key, _TAG_KEYS, RESERVED_TAGS):
            return False
        if type(value) is not str or (
            value not in good_values and not _text_ok(value, _LIM.max_tag_value, _TAG_VALUES)
        ):
            return False
    return True


def _reading_parts(data: Any, time_of: Callable[[Any], _T | None]) -> _Parts[_T] | None:
    """``m``, ``at`` (as ``time_of`` reads it), sensor, tags, fields of a plainly valid reading."""
    if type(data) is not dict or not data.keys() <= _READING_KEYS:
        return None
    get = data.get
    m = get("m")
    if type(m) is not str or (
        m not in _NAMES.good and not _key_ok(m, _NAMES, RESERVED_MEASUREMENTS)
    ):
        return None
    at = time_of(get("at"))
    if at is None:
        return None
    sensor = get("sensor")
    if sensor is not None and (
        type(sensor) is not str
        or (sensor not in _SENSORS.good and not _text_ok(sensor, _LIM.max_sensor, _SENSORS))
    ):
        return None
    tags = get("tags")
    if tags is None:
        if "tags" in data:
            return None
        tags = {}
    elif type(tags) is not dict or (tags and not _tags_ok(tags)):
        return None
    fields = get("fields")
    if not _fields_ok(fields):
        return None
    return m, at, sensor, tags, fields


def _reading_fast(data: Any) -> Reading | None:
    parts = _reading_parts(data, _time)
    if parts is None:
        return None
    m, at, sensor, tags, fields = parts
    reading = Reading.__new__(Reading)
    _construct(
        reading, "__dict__", {"m": m, "at": at, "sensor": sensor, "tags": tags, "fields": fields}
    )
    _construct(reading, "__pydantic_fields_set__", set(data))
    _construct(reading, "__pydantic_extra__", None)
    _construct(reading, "__pydantic_private__", None)
    return reading


def _head(data: Any, time_of: Callable[[Any], _T | None]) -> _Head[_T] | None:
    """v, node, stream, seq, ``sent_at`` and the raw readings of a plainly valid envelope."""
    if type(data) is not dict or not data.keys() <= _ENVELOPE_KEYS:
        return None
    v, node, stream, seq = data.get("v", V), data.get("node"), data.get("stream"), data.get("seq")
    if type(v) is not int or v != V:
        return None
    if type(node) is not str or not NODE_ID.fullmatch(node):
        return None
    if type(stream) is not str or not STREAM_ID.fullmatch(stream):
        return None
    if type(seq) is not int or not 1 <= seq <= INT64_MAX:
        return None
    sent_at = time_of(data.get("sent_at"))
    raw = data.get("readings")
    if sent_at is None or type(raw) is not list or not 0 < len(raw) <= _LIM.max_readings:
        return None
    return v, node, stream, seq, sent_at, raw


def envelope_fast(payload: bytes) -> Envelope | None:
    """The envelope in ``payload`` when it is plainly valid, built without the models' checks.

    None means "not decided here": validate through :class:`Envelope` to accept it or to hear
    every reason. Whatever it returns equals what ``Envelope.model_validate_json`` returns.
    """
    try:
        data = from_json(payload, cache_strings=False)  # see envelope_lean
    except ValueError:
        return None
    head = _head(data, _time)
    if head is None:
        return None
    v, node, stream, seq, sent_at, raw = head
    readings = []
    for item in raw:
        reading = _reading_fast(item)
        if reading is None:
            return None
        readings.append(reading)
    envelope = Envelope.__new__(Envelope)
    _construct(
        envelope,
        "__dict__",
        {
            "v": v,
            "node": node,
            "stream": stream,
            "seq": seq,
            "sent_at": sent_at,
            "readings": readings,
        },
    )
    _construct(envelope, "__pydantic_fields_set__", set(data))
    _construct(envelope, "__pydantic_extra__", None)
    _construct(envelope, "__pydantic_private__", None)
    return envelope


# -- the lean path ---------------------------------------------------------------------------
#
# The collector needs no models: it turns each reading into a line of the store's line protocol.
# ``parse_envelope_lean`` runs the fast path's checks and hands back plain values (times as
# microseconds since the epoch); whatever it does not decide goes through ``parse_envelope``, so
# a bad message gets the same reasons, and a valid one the models alone accept (an offset, fewer
# digits) is converted from the models. tests/protocol/test_lean_parse.py compares it with them.

#: m, at (µs since the epoch), sensor (or None), tags, fields: one reading of a lean envelope.
LeanReading: TypeAlias = tuple[str, int, str | None, dict[str, str], dict[str, Any]]
_Parts: TypeAlias = tuple[str, _T, str | None, dict[str, str], dict[str, Any]]
_Head: TypeAlias = tuple[int, str, str, int, _T, list[Any]]


class LeanEnvelope(NamedTuple):
    """A checked data envelope as plain values; times in microseconds since the epoch.

    >>> lean_of(Envelope.model_validate_json(EXAMPLE)).readings[0][:3]
    ('visit', 1795676400000000, None)
    """

    node: str
    stream: str
    seq: int
    sent_at_us: int
    readings: list[LeanReading]


EXAMPLE = (
    b'{"v":1,"node":"rr-01","stream":"0123456789abcdef","seq":1,'
    b'"sent_at":"2026-11-26T07:00:01.000000Z",'
    b'"readings":[{"m":"visit","at":"2026-11-26T07:00:00.000000Z","fields":{"n":1}}]}'
)


def time_us(at: datetime) -> int:
    """Microseconds since the epoch of an aware datetime, exactly."""
    return (at - _EPOCH) // _US


def lean_of(envelope: Envelope) -> LeanEnvelope:
    """The lean form of a validated envelope."""
    return LeanEnvelope(
        envelope.node,
        envelope.stream,
        envelope.seq,
        time_us(envelope.sent_at),
        [(r.m, time_us(r.at), r.sensor, r.tags, r.fields) for r in envelope.readings],
    )


def envelope_lean(payload: bytes) -> LeanEnvelope | None:
    """The envelope in ``payload`` as plain values when it is plainly valid, else None.

    Accepts exactly what :func:`envelope_fast` accepts, with the same values.
    """
    try:
        # No string cache: nearly every string here (times, values) is new, so the cache only
        # costs (about 1 µs of a 10-reading envelope's 6 µs decode).
        data = from_json(payload, cache_strings=False)
    except ValueError:
        return None
    head = _head(data, _time_us)
    if head is None:
        return None
    _v, node, stream, seq, sent_at_us, raw = head
    readings = []
    for item in raw:
        reading = _reading_parts(item, _time_us)
        if reading is None:
            return None
        readings.append(reading)
    return LeanEnvelope(node, stream, seq, sent_at_us, readings)


def parse_envelope_lean(
    payload: bytes,
    *,
    topic_node: str | None = None,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> LeanEnvelope:
    """:func:`parse_envelope`, answering in plain values: the same messages pass, the same fail
    with the same reasons (:class:`~protocol.errors.InvalidMessage`)."""
    now = now or datetime.now(UTC)
    lean = envelope_lean(payload) if len(payload) <= limits.max_payload_bytes else None
    if lean is not None and (topic_node is None or lean.node == topic_node):
        now_us = time_us(now)
        newest = now_us + limits.max_future_skew // _US
        oldest = now_us - limits.max_age // _US
        if lean.sent_at_us <= newest:
            for reading in lean.readings:
                if not oldest <= reading[1] <= newest:
                    break
            else:
                return lean
    return lean_of(parse_envelope(payload, topic_node=topic_node, now=now, limits=limits))


# -- checking in the pass that writes ----------------------------------------------------------
#
# The collector writes the line protocol of a data envelope straight from its JSON, checking
# each reading in the same pass (cloud.collector.lines). It runs these very checks, by these
# names, and leaves every message they do not plainly pass to parse_envelope_lean.

#: The keys a reading may have.
READING_KEYS = _READING_KEYS
#: v, node, stream, seq, sent_at (µs) and the raw readings of a plainly valid envelope, or None.
envelope_head = _head
#: m, at, sensor, tags, fields of a plainly valid reading, or None.
reading_parts = _reading_parts
#: Whether a reading's fields are plainly valid (names, count, each value).
fields_ok = _fields_ok
#: Microseconds since the epoch of a time in the contract's own format, or None.
time_us_of = _time_us


def parse_message(model: type[M], payload: bytes) -> M:
    """Validate a birth, receipt or other JSON message; every reason in the error."""
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise InvalidMessage(reasons_of(exc)) from None


def encode_readings(readings: Sequence[Reading]) -> bytes:
    """The readings of one envelope as a JSON array, as the outbox stores them."""
    return b"[" + b",".join(r.model_dump_json().encode() for r in readings) + b"]"


def encode_envelope(
    *, node: str, stream: str, seq: int, sent_at: datetime, readings_json: bytes
) -> bytes:
    """Wrap stored readings into a data envelope without parsing them again.

    ``node`` and ``stream`` come from the node's own validated config and outbox.
    """
    head = json.dumps(
        {"v": V, "node": node, "stream": stream, "seq": seq, "sent_at": format_time(sent_at)},
        separators=(",", ":"),
    )
    return head[:-1].encode() + b',"readings":' + readings_json + b"}"
