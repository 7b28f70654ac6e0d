"""CSC Measurement (0x2A5B) as the GATT Specification Supplement defines it, and the motion two
consecutive measurements imply.

Flags uint8: bit0 wheel revolution data present, bit1 crank revolution data present. Then
cumulative wheel revolutions uint32 and last wheel event time uint16 (1/1024 s), cumulative
crank revolutions uint16 and last crank event time uint16 (1/1024 s), each pair only when
flagged. Event times roll over every 64 s and counters at their width, so speed comes from the
difference of two measurements taken less than 64 s apart (:func:`csc_motion`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, tzinfo

from hardware.gatt import _wire
from hardware.gatt.decoded import Decoded, FieldValue
from hardware.gatt.errors import DecodeError, EncodeError

UUID = 0x2A5B
NAME = "csc_measurement"

WHEEL = 0x01
CRANK = 0x02

TICKS_PER_S = 1024
_TIME_MODULO = 1 << 16
_WHEEL_MODULO = 1 << 32
_CRANK_MODULO = 1 << 16


def decode_csc_measurement(data: bytes, *, tz: tzinfo = UTC) -> Decoded:
    """Decode a CSC Measurement value; event times in seconds (exact: n/1024). ``tz`` is unused."""
    flags = _wire.flags_of(NAME, data)
    expected = 1 + (6 if flags & WHEEL else 0) + (4 if flags & CRANK else 0)
    _wire.expect_length(NAME, data, expected, flags)
    read = _wire.Reader(NAME, data, 1)
    fields: dict[str, FieldValue] = {}
    units: dict[str, str] = {}
    if flags & WHEEL:
        fields["wheel_revolutions"] = read.uint(4)
        fields["wheel_event_time_s"] = read.uint(2) / TICKS_PER_S
        units["wheel_event_time_s"] = "s"
    if flags & CRANK:
        fields["crank_revolutions"] = read.uint(2)
        fields["crank_event_time_s"] = read.uint(2) / TICKS_PER_S
        units["crank_event_time_s"] = "s"
    return Decoded(NAME, UUID, fields, units)


def encode_csc_measurement(
    *,
    wheel_revolutions: int | None = None,
    wheel_event_time_s: float | None = None,
    crank_revolutions: int | None = None,
    crank_event_time_s: float | None = None,
) -> bytes:
    """A CSC Measurement payload from running totals; counters and times wrap as a sensor's do.

    >>> encode_csc_measurement(wheel_revolutions=2**32 + 5, wheel_event_time_s=65.0).hex()
    '01050000000004'
    """
    flags = 0
    body = b""
    if (wheel_revolutions is None) != (wheel_event_time_s is None):
        raise _pair_error("wheel")
    if (crank_revolutions is None) != (crank_event_time_s is None):
        raise _pair_error("crank")
    if wheel_revolutions is not None and wheel_event_time_s is not None:
        flags |= WHEEL
        body += _wire.uint(wheel_revolutions % _WHEEL_MODULO, 4, "wheel_revolutions")
        body += _wire.uint(_ticks(wheel_event_time_s), 2, "wheel_event_time_s")
    if crank_revolutions is not None and crank_event_time_s is not None:
        flags |= CRANK
        body += _wire.uint(crank_revolutions % _CRANK_MODULO, 2, "crank_revolutions")
        body += _wire.uint(_ticks(crank_event_time_s), 2, "crank_event_time_s")
    return bytes([flags]) + body


def _pair_error(what: str) -> EncodeError:
    return EncodeError(f"{NAME}: {what} revolutions and event time travel together")


def _ticks(seconds: float) -> int:
    return round(seconds * TICKS_PER_S) % _TIME_MODULO


@dataclass(frozen=True, slots=True)
class CscMotion:
    """What happened between two CSC measurements; ``None`` where the data does not say.

    >>> CscMotion(speed_m_s=5.0, distance_m=10.0, cadence_rpm=None).speed_m_s
    5.0
    """

    speed_m_s: float | None
    distance_m: float | None
    cadence_rpm: float | None


def csc_motion(previous: Decoded, current: Decoded, *, wheel_circumference_m: float) -> CscMotion:
    """Speed, distance and cadence between two consecutive CSC measurements.

    Counters and event times are differenced modulo their width, so a rollover between the
    two measurements is handled; more than 64 s between them cannot be told from less. The
    same event time and count means no new revolution (speed 0); the same event time with a
    new count cannot be a rate, and gives ``None``.
    """
    for which, decoded in (("previous", previous), ("current", current)):
        if decoded.characteristic != NAME:
            raise DecodeError(f"csc_motion: {which} is {decoded.characteristic}, not {NAME}")
    if not wheel_circumference_m > 0:
        raise DecodeError(f"csc_motion: wheel circumference {wheel_circumference_m} m is not > 0")
    speed = distance = cadence = None
    wheel = _deltas(previous, current, "wheel", _WHEEL_MODULO)
    if wheel is not None:
        revolutions, ticks = wheel
        distance = revolutions * wheel_circumference_m
        speed = distance * TICKS_PER_S / ticks if ticks else _still(revolutions)
    crank = _deltas(previous, current, "crank", _CRANK_MODULO)
    if crank is not None:
        revolutions, ticks = crank
        cadence = revolutions * 60 * TICKS_PER_S / ticks if ticks else _still(revolutions)
    return CscMotion(speed_m_s=speed, distance_m=distance, cadence_rpm=cadence)


def _still(revolutions: int) -> float | None:
    return 0.0 if revolutions == 0 else None


def _deltas(previous: Decoded, current: Decoded, what: str, modulo: int) -> tuple[int, int] | None:
    keys = (f"{what}_revolutions", f"{what}_event_time_s")
    if not all(k in previous.fields and k in current.fields for k in keys):
        return None
    revolutions = (int(current.fields[keys[0]]) - int(previous.fields[keys[0]])) % modulo
    ticks = (
        round(float(current.fields[keys[1]]) * TICKS_PER_S)
        - round(float(previous.fields[keys[1]]) * TICKS_PER_S)
    ) % _TIME_MODULO
    return revolutions, ticks
