"""Location and Speed (0x2A67) as the GATT Specification Supplement defines it.

Flags uint16: bit0 instantaneous speed, bit1 total distance, bit2 location, bit3 elevation,
bit4 heading, bit5 rolling time, bit6 UTC time present; bits7-8 position status (0 none, 1 ok,
2 estimated, 3 last known); bit9 speed and distance format (0 2D, 1 3D); bits10-11 elevation
source (0 positioning system, 1 barometric air pressure, 2 database service, 3 other); bit12
heading source (0 movement, 1 magnetic compass). Then, in this order and each only when flagged:
speed uint16 (0.01 m/s), total distance uint24 (0.1 m), latitude and longitude sint32 (1e-7
degree), elevation sint24 (0.01 m), heading uint16 (0.01 degree), rolling time uint8 (s) and
UTC time (date-time). The time is UTC by definition, so ``tz`` does not apply to it.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from hardware.gatt import _wire
from hardware.gatt.date_time import SIZE as DATE_TIME_SIZE
from hardware.gatt.date_time import encode_date_time
from hardware.gatt.decoded import Decoded, FieldValue
from hardware.gatt.errors import DecodeError, EncodeError

UUID = 0x2A67
NAME = "location_and_speed"

SPEED = 0x0001
DISTANCE = 0x0002
LOCATION = 0x0004
ELEVATION = 0x0008
HEADING = 0x0010
ROLLING_TIME = 0x0020
UTC_TIME = 0x0040
_POSITION_SHIFT = 7
FORMAT_3D = 0x0200
_ELEVATION_SHIFT = 10
HEADING_COMPASS = 0x1000

POSITION_STATUS = ("none", "ok", "estimated", "last_known")
ELEVATION_SOURCE = ("positioning_system", "barometric", "database", "other")
HEADING_SOURCE = ("movement", "magnetic_compass")

_SIZES = (
    (SPEED, 2),
    (DISTANCE, 3),
    (LOCATION, 8),
    (ELEVATION, 3),
    (HEADING, 2),
    (ROLLING_TIME, 1),
    (UTC_TIME, DATE_TIME_SIZE),
)
_DEGREE = 10**7
_MAX_HEADING = 35999


def decode_location_and_speed(data: bytes, *, tz: tzinfo = UTC) -> Decoded:
    """Decode a Location and Speed value. ``tz`` is unused: its time is UTC by definition."""
    flags = _wire.flags_of(NAME, data, 2)
    expected = 2 + sum(size for bit, size in _SIZES if flags & bit)
    _wire.expect_length(NAME, data, expected, flags)
    read = _wire.Reader(NAME, data, 2)
    fields: dict[str, FieldValue] = {
        "position_status": POSITION_STATUS[(flags >> _POSITION_SHIFT) & 0b11]
    }
    units: dict[str, str] = {}
    if flags & (SPEED | DISTANCE):
        fields["speed_distance_format"] = "3d" if flags & FORMAT_3D else "2d"
    if flags & SPEED:
        fields["speed_m_s"] = read.uint(2) / 100
        units["speed_m_s"] = "m/s"
    if flags & DISTANCE:
        fields["total_distance_m"] = read.uint(3) / 10
        units["total_distance_m"] = "m"
    if flags & LOCATION:
        latitude, longitude = read.sint(4), read.sint(4)
        if abs(latitude) > 90 * _DEGREE or abs(longitude) > 180 * _DEGREE:
            raise DecodeError(
                f"{NAME}: location {latitude / _DEGREE}, {longitude / _DEGREE} is off the globe"
            )
        fields["latitude_deg"] = latitude / _DEGREE
        fields["longitude_deg"] = longitude / _DEGREE
        units.update(latitude_deg="deg", longitude_deg="deg")
    if flags & ELEVATION:
        fields["elevation_m"] = read.sint(3) / 100
        fields["elevation_source"] = ELEVATION_SOURCE[(flags >> _ELEVATION_SHIFT) & 0b11]
        units["elevation_m"] = "m"
    if flags & HEADING:
        heading = read.uint(2)
        if heading > _MAX_HEADING:
            raise DecodeError(f"{NAME}: heading {heading / 100} deg is not below 360")
        fields["heading_deg"] = heading / 100
        fields["heading_source"] = HEADING_SOURCE[bool(flags & HEADING_COMPASS)]
        units["heading_deg"] = "deg"
    if flags & ROLLING_TIME:
        fields["rolling_time_s"] = read.uint(1)
        units["rolling_time_s"] = "s"
    at = read.date_time(UTC) if flags & UTC_TIME else None
    return Decoded(NAME, UUID, fields, units, at)


def encode_location_and_speed(
    *,
    speed_m_s: float | None = None,
    total_distance_m: float | None = None,
    latitude_deg: float | None = None,
    longitude_deg: float | None = None,
    elevation_m: float | None = None,
    heading_deg: float | None = None,
    rolling_time_s: int | None = None,
    at: datetime | None = None,
    position_status: str = "ok",
    three_d: bool = False,
    elevation_source: str = "positioning_system",
    heading_source: str = "movement",
) -> bytes:
    """A Location and Speed payload carrying the values given.

    >>> encode_location_and_speed(speed_m_s=4.2, position_status="none").hex()
    '0100a401'
    """
    if (latitude_deg is None) != (longitude_deg is None):
        raise EncodeError(f"{NAME}: latitude and longitude travel together")
    flags = _index(POSITION_STATUS, position_status, "position_status") << _POSITION_SHIFT
    flags |= FORMAT_3D if three_d else 0
    body = b""
    if speed_m_s is not None:
        flags |= SPEED
        body += _wire.scaled(speed_m_s, 100, 2, "speed_m_s", top=0xFFFF)
    if total_distance_m is not None:
        flags |= DISTANCE
        body += _wire.scaled(total_distance_m, 10, 3, "total_distance_m", top=0xFFFFFF)
    if latitude_deg is not None and longitude_deg is not None:
        if abs(latitude_deg) > 90 or abs(longitude_deg) > 180:
            raise EncodeError(f"{NAME}: location {latitude_deg}, {longitude_deg} is off the globe")
        flags |= LOCATION
        body += _wire.sint(round(latitude_deg * _DEGREE), 4, "latitude_deg")
        body += _wire.sint(round(longitude_deg * _DEGREE), 4, "longitude_deg")
    if elevation_m is not None:
        flags |= ELEVATION
        flags |= _index(ELEVATION_SOURCE, elevation_source, "elevation_source") << _ELEVATION_SHIFT
        body += _wire.sint(round(elevation_m * 100), 3, "elevation_m")
    if heading_deg is not None:
        flags |= HEADING
        flags |= HEADING_COMPASS * _index(HEADING_SOURCE, heading_source, "heading_source")
        body += _wire.scaled(heading_deg, 100, 2, "heading_deg", top=_MAX_HEADING)
    if rolling_time_s is not None:
        flags |= ROLLING_TIME
        body += _wire.uint(rolling_time_s, 1, "rolling_time_s")
    if at is not None:
        flags |= UTC_TIME
        body += encode_date_time(at, tz=UTC)
    return flags.to_bytes(2, "little") + body


def _index(names: tuple[str, ...], name: str, what: str) -> int:
    if name not in names:
        raise EncodeError(f"{NAME}: {what} {name!r} is not one of {', '.join(names)}")
    return names.index(name)
