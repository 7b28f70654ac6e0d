"""The GATT Date Time value (7 bytes: year uint16, month, day, hours, minutes, seconds).

Year, month or day 0 means "not known" (GATT Specification Supplement, Date Time): that decodes
to ``None``, not to an error. GATT times carry no zone; the caller says which one applies.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from hardware.gatt.errors import DecodeError, EncodeError

SIZE = 7
_UNKNOWN = bytes(SIZE)


def decode_date_time(data: bytes, *, tz: tzinfo = UTC, what: str = "date_time") -> datetime | None:
    """The instant in a 7-byte Date Time read in zone ``tz``; ``None`` if the date is unknown."""
    if len(data) != SIZE:
        raise DecodeError(f"{what}: date-time needs {SIZE} bytes, got {len(data)}")
    year = int.from_bytes(data[0:2], "little")
    month, day, hours, minutes, seconds = data[2:7]
    if year == 0 or month == 0 or day == 0:
        return None
    if not 1582 <= year <= 9999:
        raise DecodeError(f"{what}: year {year} is outside 1582..9999")
    try:
        return datetime(year, month, day, hours, minutes, seconds, tzinfo=tz)
    except ValueError as exc:
        stamp = f"{year:04d}-{month:02d}-{day:02d} {hours:02d}:{minutes:02d}:{seconds:02d}"
        raise DecodeError(f"{what}: date-time {stamp} is invalid ({exc})") from exc


def encode_date_time(at: datetime | None, *, tz: tzinfo = UTC) -> bytes:
    """The 7-byte Date Time of ``at`` as seen in zone ``tz``; ``None`` gives "not known"."""
    if at is None:
        return _UNKNOWN
    if at.tzinfo is None:
        raise EncodeError(f"date-time {at.isoformat()} has no time zone")
    local = at.astimezone(tz)
    if not 1582 <= local.year <= 9999:
        raise EncodeError(f"date-time year {local.year} is outside 1582..9999")
    return local.year.to_bytes(2, "little") + bytes(
        (local.month, local.day, local.hour, local.minute, local.second)
    )
