"""Weight Measurement (0x2A9D) as the GATT Specification Supplement defines it.

Flags uint8: bit0 units (0 SI kg/m, 1 imperial lb/in), bit1 time stamp present, bit2 user ID
present, bit3 BMI and height present. Then weight uint16 (0.005 kg or 0.01 lb; 0xFFFF is
"measurement unsuccessful"), date-time, user ID uint8 (255 unknown), BMI uint16 (0.1 kg/m2),
height uint16 (0.001 m or 0.1 in), each only when flagged.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from hardware.gatt import _wire
from hardware.gatt.date_time import SIZE as DATE_TIME_SIZE
from hardware.gatt.date_time import encode_date_time
from hardware.gatt.decoded import Decoded, FieldValue
from hardware.gatt.errors import DecodeError, EncodeError

UUID = 0x2A9D
NAME = "weight_measurement"

IMPERIAL = 0x01
TIME_STAMP = 0x02
USER_ID = 0x04
BMI_HEIGHT = 0x08

UNSUCCESSFUL = 0xFFFF
UNKNOWN_USER = 0xFF
KG_PER_LB = 0.45359237
M_PER_IN = 0.0254


def decode_weight_measurement(data: bytes, *, tz: tzinfo = UTC) -> Decoded:
    """Decode a Weight Measurement value; SI fields are always given, imperial ones too if sent."""
    flags = _wire.flags_of(NAME, data)
    expected = (
        1
        + 2
        + (DATE_TIME_SIZE if flags & TIME_STAMP else 0)
        + (1 if flags & USER_ID else 0)
        + (4 if flags & BMI_HEIGHT else 0)
    )
    _wire.expect_length(NAME, data, expected, flags)
    read = _wire.Reader(NAME, data, 1)
    imperial = bool(flags & IMPERIAL)
    fields: dict[str, FieldValue] = {}
    units: dict[str, str] = {}

    raw = read.uint(2)
    if raw == UNSUCCESSFUL:
        raise DecodeError(f"{NAME}: measurement unsuccessful (weight 0xFFFF)")
    if imperial:
        fields["weight_lb"] = raw / 100
        fields["weight_kg"] = round(raw / 100 * KG_PER_LB, 3)
        units.update(weight_lb="lb", weight_kg="kg")
    else:
        fields["weight_kg"] = raw * 5 / 1000
        units["weight_kg"] = "kg"

    at = read.date_time(tz) if flags & TIME_STAMP else None
    if flags & USER_ID:
        user = read.uint(1)
        if user != UNKNOWN_USER:
            fields["user_id"] = user
    if flags & BMI_HEIGHT:
        fields["bmi"] = read.uint(2) / 10
        units["bmi"] = "kg/m2"
        height = read.uint(2)
        if imperial:
            fields["height_in"] = height / 10
            fields["height_m"] = round(height / 10 * M_PER_IN, 4)
            units.update(height_in="in", height_m="m")
        else:
            fields["height_m"] = height / 1000
            units["height_m"] = "m"
    return Decoded(NAME, UUID, fields, units, at)


def encode_weight_measurement(
    *,
    weight: float,
    imperial: bool = False,
    at: datetime | None = None,
    user_id: int | None = None,
    bmi: float | None = None,
    height: float | None = None,
    tz: tzinfo = UTC,
) -> bytes:
    """A Weight Measurement payload; ``weight`` and ``height`` in kg/m, or lb/in if imperial.

    >>> encode_weight_measurement(weight=70.0).hex()
    '00b036'
    """
    if (bmi is None) != (height is None):
        raise EncodeError(f"{NAME}: BMI and height travel together; give both or neither")
    flags = IMPERIAL if imperial else 0
    body = _wire.scaled(weight, 100 if imperial else 200, 2, "weight", top=UNSUCCESSFUL - 1)
    if at is not None:
        flags |= TIME_STAMP
        body += encode_date_time(at, tz=tz)
    if user_id is not None:
        flags |= USER_ID
        body += _wire.uint(user_id, 1, "user_id")
    if bmi is not None and height is not None:
        flags |= BMI_HEIGHT
        body += _wire.scaled(bmi, 10, 2, "bmi", top=0xFFFF)
        body += _wire.scaled(height, 10 if imperial else 1000, 2, "height", top=0xFFFF)
    return bytes([flags]) + body
