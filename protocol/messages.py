"""Messages of the wire contract v1: readings, data envelopes, births and receipts.

A data envelope on ``{prefix}/v1/{node}/data``::

    {"v": 1, "node": "rr-01", "stream": "3f2a...", "seq": 17,
     "sent_at": "2026-11-26T07:10:19.123456Z",
     "readings": [{"m": "visit", "at": "2026-11-26T07:09:58.000000Z", "sensor": "stall-1",
                   "tags": {"stall": "1"}, "fields": {"duration_s": 182.5}}]}

``seq`` counts envelopes within a stream (1, 2, 3 ...) and is never reused, so the cloud can
tell exactly which are missing. A stream is born with the node's outbox; a new outbox is a new
stream. Times are UTC ISO 8601 with microseconds and a ``Z``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    StringConstraints,
    field_validator,
    model_validator,
)

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
)

#: Schema version carried in every message as ``v``.
V: Literal[1] = 1

_LIM = DEFAULT_LIMITS


def format_time(at: datetime) -> str:
    """UTC, microseconds always present, ``Z`` suffix: the contract's one time format."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _to_utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


#: A timezone-aware instant, stored in UTC and written with microseconds.
UtcTime = Annotated[AwareDatetime, PlainSerializer(format_time, return_type=str)]

#: Measurement names, tag keys and field keys (the pattern also goes into the JSON Schema).
Key = Annotated[str, StringConstraints(pattern=KEY.pattern)]
NodeId = Annotated[str, StringConstraints(pattern=NODE_ID.pattern)]
StreamId = Annotated[str, StringConstraints(pattern=STREAM_ID.pattern)]


def _no_control(value: str) -> str:
    if CONTROL.search(value):
        raise ValueError("holds a control character")
    return value


def _tag_text(value: str) -> str:
    _no_control(value)
    # InfluxDB 1.x reads a backslash before the separator that follows a tag value as an
    # escape, so no encoding stores a value ending in one: refuse it here, at the contract.
    if value.endswith("\\"):
        raise ValueError("ends with a backslash, which InfluxDB 1.x cannot store in a tag")
    return value


def _not_reserved_measurement(name: str) -> str:
    if name in RESERVED_MEASUREMENTS:
        raise ValueError(f"measurement {name!r} is reserved for the cloud")
    return name


def _not_reserved_tag(key: str) -> str:
    if key in RESERVED_TAGS:
        raise ValueError(f"tag key {key!r} is reserved for the cloud")
    return key


def _not_reserved_field(key: str) -> str:
    if key in RESERVED_FIELDS:
        raise ValueError(f"field key {key!r} is reserved")
    return key


def _field_value(value: bool | int | float | str) -> bool | int | float | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{value} does not fit in 64 bits")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    if isinstance(value, str):
        if len(value) > _LIM.max_string_field:
            raise ValueError(
                f"string of {len(value)} characters, more than {_LIM.max_string_field}"
            )
        _no_control(value)
    return value


Measurement = Annotated[Key, AfterValidator(_not_reserved_measurement)]
TagKey = Annotated[Key, AfterValidator(_not_reserved_tag)]


def _one_of(names: frozenset[str]) -> dict[str, JsonValue]:
    """JSON Schema for "one of ``names``" (the models' reserved names, for the schema files)."""
    enum: list[JsonValue] = [*sorted(names)]
    return {"enum": enum}


FieldKey = Annotated[Key, AfterValidator(_not_reserved_field)]
TagValue = Annotated[
    str,
    StringConstraints(min_length=1, max_length=_LIM.max_tag_value),
    AfterValidator(_tag_text),
]
FieldValue = Annotated[bool | int | float | str, AfterValidator(_field_value)]
Sensor = Annotated[
    str, StringConstraints(min_length=1, max_length=_LIM.max_sensor), AfterValidator(_tag_text)
]


class Reading(BaseModel):
    """One measurement taken at one instant, as a sensor agent produces it.

    >>> at = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    >>> Reading(m="visit", at=at, fields={"duration_s": 3.5}).model_dump_json()[:47]
    '{"m":"visit","at":"2026-11-26T07:00:00.000000Z"'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    m: Measurement = Field(
        description="Measurement name.",
        json_schema_extra={"not": _one_of(RESERVED_MEASUREMENTS)},
    )
    at: UtcTime = Field(description="When it was measured (UTC, microseconds).")
    sensor: Sensor | None = Field(default=None, description="Which sensor of the node, if several.")
    tags: dict[TagKey, TagValue] = Field(
        default_factory=dict,
        max_length=_LIM.max_tags,
        description="Indexed attributes.",
        json_schema_extra={"propertyNames": {"not": _one_of(RESERVED_TAGS)}},
    )
    fields: dict[FieldKey, FieldValue] = Field(
        min_length=1,
        max_length=_LIM.max_fields,
        description="The values: finite numbers, booleans, short strings.",
        json_schema_extra={"propertyNames": {"not": _one_of(RESERVED_FIELDS)}},
    )

    @field_validator("at")
    @classmethod
    def _at(cls, v: datetime) -> datetime:
        return _to_utc(v)


class Envelope(BaseModel):
    """A batch of readings from one node, numbered within the node's stream."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = Field(default=V, description="Schema version.")
    node: NodeId = Field(description="The node's id, equal to its MQTT username and topic level.")
    stream: StreamId = Field(description="Id of the node's outbox; a new outbox is a new stream.")
    seq: int = Field(ge=1, le=INT64_MAX, description="1, 2, 3 ... within the stream, never reused.")
    sent_at: UtcTime = Field(description="When this copy was sent (a resend gets a new time).")
    readings: list[Reading] = Field(min_length=1, max_length=_LIM.max_readings)

    @field_validator("sent_at")
    @classmethod
    def _sent_at(cls, v: datetime) -> datetime:
        return _to_utc(v)


NodeKind = Literal["restroom", "vehicle", "station", "kiosk"]


class Birth(BaseModel):
    """Who a node is, retained on ``{prefix}/v1/{node}/birth`` at every connect."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = V
    node: NodeId
    kind: NodeKind
    software: Annotated[str, StringConstraints(max_length=64)] = Field(
        description="machikado version running on the node."
    )
    config_digest: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="SHA-256 of the node's effective config, hex."
    )
    sensors: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, max_length=256, description="Sensors the node reads."
    )
    stream: StreamId
    boot_at: UtcTime


SeqRange = tuple[int, int]
#: A seq as a receipt names it: what an envelope's ``seq`` may be, 1 to the largest int64.
ReceiptSeq = Annotated[int, Field(ge=1, le=INT64_MAX)]


class Receipt(BaseModel):
    """The cloud's word that these seqs of this stream are durably stored.

    Ranges are inclusive and sorted: ``[[1, 40], [42, 42]]``. Each bound is a seq an envelope
    may carry (1 to 2**63 - 1), so a receipt names nothing a node's outbox cannot hold.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = V
    stream: StreamId
    ranges: list[tuple[ReceiptSeq, ReceiptSeq]] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _ranges_ordered(self) -> Receipt:
        for lo, hi in self.ranges:
            if hi < lo:
                raise ValueError(f"range [{lo}, {hi}] is not 1 <= low <= high")
        return self

    @classmethod
    def of(cls, stream: str, seqs: Any) -> Receipt:
        """Build a receipt from any iterable of seqs, merging them into ranges."""
        return cls(stream=stream, ranges=to_ranges(seqs))

    def covers(self, seq: int) -> bool:
        return any(lo <= seq <= hi for lo, hi in self.ranges)


def to_ranges(seqs: Any) -> list[SeqRange]:
    """Collapse seqs into sorted inclusive ranges.

    >>> to_ranges([5, 1, 2, 3, 7, 6, 10])
    [(1, 3), (5, 7), (10, 10)]
    """
    out: list[SeqRange] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


ONLINE = b"online"
OFFLINE = b"offline"
