"""Blood Pressure Measurement (0x2A35) as the GATT Specification Supplement defines it.

Flags uint8: bit0 units (0 mmHg, 1 kPa), bit1 time stamp, bit2 pulse rate, bit3 user ID,
bit4 measurement status present. Then systolic, diastolic and mean arterial pressure (SFLOAT
each), date-time, pulse rate (SFLOAT, beats/min), user ID uint8 (255 unknown) and measurement
status uint16: bit0 body movement, bit1 cuff too loose, bit2 irregular pulse, bits3-4 pulse rate
range (0 within, 1 above upper limit, 2 below lower limit), bit5 improper measurement position.
Pressures are always given in mmHg (the clinical unit), and in kPa too when the cuff sent kPa.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Literal

from hardware.gatt import _wire
from hardware.gatt.date_time import SIZE as DATE_TIME_SIZE
from hardware.gatt.date_time import encode_date_time
from hardware.gatt.decoded import Decoded, FieldValue
from hardware.gatt.errors import DecodeError, EncodeError
from hardware.gatt.ieee11073 import encode_sfloat

UUID = 0x2A35
NAME = "blood_pressure_measurement"

KPA = 0x01
TIME_STAMP = 0x02
PULSE_RATE = 0x04
USER_ID = 0x08
STATUS = 0x10

UNKNOWN_USER = 0xFF
MMHG_PER_KPA = 7.500616827

PulseRange = Literal["within", "above_upper", "below_lower"]
_PULSE_RANGES: tuple[PulseRange, ...] = ("within", "above_upper", "below_lower")
_PRESSURES = ("systolic", "diastolic", "mean_arterial")


@dataclass(frozen=True, slots=True)
class MeasurementStatus:
    """What the cuff noticed while measuring (the Measurement Status field).

    >>> MeasurementStatus(irregular_pulse=True).to_raw()
    4
    """

    body_movement: bool = False
    cuff_too_loose: bool = False
    irregular_pulse: bool = False
    pulse_rate_range: PulseRange = "within"
    improper_position: bool = False

    def to_raw(self) -> int:
        """The uint16 bit field."""
        if self.pulse_rate_range not in _PULSE_RANGES:
            raise EncodeError(
                f"{NAME}: pulse_rate_range {self.pulse_rate_range!r} is not one of "
                f"{', '.join(_PULSE_RANGES)}"
            )
        return (
            self.body_movement
            | self.cuff_too_loose << 1
            | self.irregular_pulse << 2
            | _PULSE_RANGES.index(self.pulse_rate_range) << 3
            | self.improper_position << 5
        )

    @classmethod
    def from_raw(cls, raw: int) -> MeasurementStatus:
        """Read the uint16 bit field; the reserved pulse-range value 3 raises DecodeError."""
        pulse = (raw >> 3) & 0b11
        if pulse == 3:
            raise DecodeError(f"{NAME}: measurement status 0x{raw:04X} has reserved pulse range 3")
        return cls(
            body_movement=bool(raw & 0x01),
            cuff_too_loose=bool(raw & 0x02),
            irregular_pulse=bool(raw & 0x04),
            pulse_rate_range=_PULSE_RANGES[pulse],
            improper_position=bool(raw & 0x20),
        )


def decode_blood_pressure_measurement(data: bytes, *, tz: tzinfo = UTC) -> Decoded:
    """Decode a Blood Pressure Measurement value; a special SFLOAT raises DecodeError."""
    flags = _wire.flags_of(NAME, data)
    expected = (
        1
        + 6
        + (DATE_TIME_SIZE if flags & TIME_STAMP else 0)
        + (2 if flags & PULSE_RATE else 0)
        + (1 if flags & USER_ID else 0)
        + (2 if flags & STATUS else 0)
    )
    _wire.expect_length(NAME, data, expected, flags)
    read = _wire.Reader(NAME, data, 1)
    fields: dict[str, FieldValue] = {}
    units: dict[str, str] = {}
    for name in _PRESSURES:
        value = read.sfloat(name)
        if flags & KPA:
            fields[f"{name}_kpa"] = value
            units[f"{name}_kpa"] = "kPa"
            fields[f"{name}_mmhg"] = round(value * MMHG_PER_KPA, 1)
        else:
            fields[f"{name}_mmhg"] = value
        units[f"{name}_mmhg"] = "mmHg"
    at = read.date_time(tz) if flags & TIME_STAMP else None
    if flags & PULSE_RATE:
        fields["pulse_bpm"] = read.sfloat("pulse rate")
        units["pulse_bpm"] = "/min"
    if flags & USER_ID:
        user = read.uint(1)
        if user != UNKNOWN_USER:
            fields["user_id"] = user
    if flags & STATUS:
        status = MeasurementStatus.from_raw(read.uint(2))
        fields.update(
            body_movement=status.body_movement,
            cuff_too_loose=status.cuff_too_loose,
            irregular_pulse=status.irregular_pulse,
            pulse_rate_range=status.pulse_rate_range,
            improper_position=status.improper_position,
        )
    return Decoded(NAME, UUID, fields, units, at)


def encode_blood_pressure_measurement(
    *,
    systolic: float,
    diastolic: float,
    mean_arterial: float,
    kpa: bool = False,
    at: datetime | None = None,
    pulse_bpm: float | None = None,
    user_id: int | None = None,
    status: MeasurementStatus | None = None,
    tz: tzinfo = UTC,
) -> bytes:
    """A Blood Pressure Measurement payload; pressures in mmHg, or kPa if ``kpa``.

    >>> encode_blood_pressure_measurement(systolic=120, diastolic=80, mean_arterial=93).hex()
    '00780050005d00'
    """
    flags = KPA if kpa else 0
    body = b"".join(encode_sfloat(v) for v in (systolic, diastolic, mean_arterial))
    if at is not None:
        flags |= TIME_STAMP
        body += encode_date_time(at, tz=tz)
    if pulse_bpm is not None:
        flags |= PULSE_RATE
        body += encode_sfloat(pulse_bpm)
    if user_id is not None:
        flags |= USER_ID
        body += _wire.uint(user_id, 1, "user_id")
    if status is not None:
        flags |= STATUS
        body += _wire.uint(status.to_raw(), 2, "measurement status")
    return bytes([flags]) + body
