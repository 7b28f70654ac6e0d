"""Reading and writing the little-endian fields GATT payloads are made of."""

from __future__ import annotations

from datetime import datetime, tzinfo

from hardware.gatt import date_time, ieee11073
from hardware.gatt.errors import DecodeError, EncodeError


def flags_of(name: str, data: bytes, size: int = 1) -> int:
    """The leading flags field of ``data``; too short a payload raises DecodeError."""
    if len(data) < size:
        raise DecodeError(f"{name}: expected at least {size} bytes of flags, got {len(data)}")
    return int.from_bytes(data[:size], "little")


def expect_length(name: str, data: bytes, expected: int, flags: int) -> None:
    """Raise DecodeError unless ``data`` is exactly as long as its ``flags`` require."""
    if len(data) != expected:
        shape = "short" if len(data) < expected else "long"
        raise DecodeError(
            f"{name}: payload too {shape}: flags 0x{flags:02X} need {expected} bytes, "
            f"got {len(data)}"
        )


class Reader:
    """Sequential reads over a payload whose length was already checked."""

    def __init__(self, name: str, data: bytes, offset: int = 0) -> None:
        self.name = name
        self._data = data
        self._at = offset

    def _take(self, size: int) -> bytes:
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self._take(size), "little")

    def sint(self, size: int) -> int:
        return int.from_bytes(self._take(size), "little", signed=True)

    def sfloat(self, what: str) -> float:
        try:
            return ieee11073.decode_sfloat(self._take(2))
        except DecodeError as exc:
            raise DecodeError(f"{self.name} {what}: {exc}") from exc

    def float32(self, what: str) -> float:
        try:
            return ieee11073.decode_float(self._take(4))
        except DecodeError as exc:
            raise DecodeError(f"{self.name} {what}: {exc}") from exc

    def date_time(self, tz: tzinfo) -> datetime | None:
        return date_time.decode_date_time(self._take(date_time.SIZE), tz=tz, what=self.name)


def uint(value: int, size: int, what: str) -> bytes:
    """``value`` as a little-endian unsigned field; out of range raises EncodeError."""
    if not 0 <= value < 1 << (8 * size):
        raise EncodeError(f"{what} {value} does not fit in uint{8 * size}")
    return value.to_bytes(size, "little")


def sint(value: int, size: int, what: str) -> bytes:
    """``value`` as a little-endian signed field; out of range raises EncodeError."""
    half = 1 << (8 * size - 1)
    if not -half <= value < half:
        raise EncodeError(f"{what} {value} does not fit in sint{8 * size}")
    return value.to_bytes(size, "little", signed=True)


def scaled(value: float, resolution_inverse: int, size: int, what: str, *, top: int) -> bytes:
    """``value`` in steps of ``1/resolution_inverse`` as an unsigned field, at most ``top``."""
    raw = round(value * resolution_inverse)
    if not 0 <= raw <= top:
        raise EncodeError(f"{what} {value} is outside 0..{top / resolution_inverse}")
    return raw.to_bytes(size, "little")
