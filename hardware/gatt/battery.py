"""Battery Level (0x2A19): one uint8, the charge in percent (0..100)."""

from __future__ import annotations

from datetime import UTC, tzinfo

from hardware.gatt.decoded import Decoded
from hardware.gatt.errors import DecodeError, EncodeError

UUID = 0x2A19
NAME = "battery_level"


def decode_battery_level(data: bytes, *, tz: tzinfo = UTC) -> Decoded:
    """Decode a Battery Level value; above 100 % raises DecodeError. ``tz`` is unused."""
    if len(data) != 1:
        raise DecodeError(f"{NAME}: expected 1 byte, got {len(data)}")
    level = data[0]
    if level > 100:
        raise DecodeError(f"{NAME}: {level} % is above 100 %")
    return Decoded(NAME, UUID, {"battery_pct": level}, {"battery_pct": "%"})


def encode_battery_level(*, percent: int) -> bytes:
    """A Battery Level payload.

    >>> encode_battery_level(percent=87).hex()
    '57'
    """
    if not 0 <= percent <= 100:
        raise EncodeError(f"{NAME}: {percent} % is outside 0..100")
    return bytes([percent])
