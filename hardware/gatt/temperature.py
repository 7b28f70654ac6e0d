"""Temperature Measurement (0x2A1C) as the GATT Specification Supplement defines it.

Flags uint8: bit0 units (0 Celsius, 1 Fahrenheit), bit1 time stamp present, bit2 temperature
type present. Then the temperature (FLOAT), date-time, and temperature type uint8 (where on the
body it was taken, 1..9). Celsius is always given, Fahrenheit too when the thermometer sent it.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from hardware.gatt import _wire
from hardware.gatt.date_time import SIZE as DATE_TIME_SIZE
from hardware.gatt.date_time import encode_date_time
from hardware.gatt.decoded import Decoded, FieldValue
from hardware.gatt.errors import DecodeError, EncodeError
from hardware.gatt.ieee11073 import encode_float

UUID = 0x2A1C
NAME = "temperature_measurement"

FAHRENHEIT = 0x01
TIME_STAMP = 0x02
TEMPERATURE_TYPE = 0x04

#: Temperature Type values 1..9; 0 and 10..255 are reserved.
TYPES: dict[int, str] = {
    1: "armpit",
    2: "body",
    3: "ear",
    4: "finger",
    5: "gastrointestinal",
    6: "mouth",
    7: "rectum",
    8: "toe",
    9: "tympanum",
}
_TYPE_CODES = {name: code for code, name in TYPES.items()}


def decode_temperature_measurement(data: bytes, *, tz: tzinfo = UTC) -> Decoded:
    """Decode a Temperature Measurement value; a special FLOAT raises DecodeError."""
    flags = _wire.flags_of(NAME, data)
    expected = (
        1
        + 4
        + (DATE_TIME_SIZE if flags & TIME_STAMP else 0)
        + (1 if flags & TEMPERATURE_TYPE else 0)
    )
    _wire.expect_length(NAME, data, expected, flags)
    read = _wire.Reader(NAME, data, 1)
    fields: dict[str, FieldValue] = {}
    units: dict[str, str] = {}
    value = read.float32("temperature")
    if flags & FAHRENHEIT:
        fields["temperature_f"] = value
        fields["temperature_c"] = round((value - 32) * 5 / 9, 2)
        units.update(temperature_f="degF", temperature_c="Cel")
    else:
        fields["temperature_c"] = value
        units["temperature_c"] = "Cel"
    at = read.date_time(tz) if flags & TIME_STAMP else None
    if flags & TEMPERATURE_TYPE:
        code = read.uint(1)
        if code not in TYPES:
            raise DecodeError(f"{NAME}: temperature type {code} is reserved (known: 1..9)")
        fields["temperature_type"] = TYPES[code]
    return Decoded(NAME, UUID, fields, units, at)


def encode_temperature_measurement(
    *,
    temperature: float,
    fahrenheit: bool = False,
    at: datetime | None = None,
    temperature_type: str | None = None,
    decimals: int | None = None,
    tz: tzinfo = UTC,
) -> bytes:
    """A Temperature Measurement payload; ``temperature`` in Celsius, or Fahrenheit if asked.

    >>> encode_temperature_measurement(temperature=36.6, temperature_type="ear").hex()
    '046e0100ff03'
    """
    flags = FAHRENHEIT if fahrenheit else 0
    body = encode_float(temperature, decimals)
    if at is not None:
        flags |= TIME_STAMP
        body += encode_date_time(at, tz=tz)
    if temperature_type is not None:
        if temperature_type not in _TYPE_CODES:
            raise EncodeError(
                f"{NAME}: temperature_type {temperature_type!r} is not one of "
                f"{', '.join(_TYPE_CODES)}"
            )
        flags |= TEMPERATURE_TYPE
        body += bytes([_TYPE_CODES[temperature_type]])
    return bytes([flags]) + body
