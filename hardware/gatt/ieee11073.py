"""IEEE 11073-20601 numbers as GATT carries them: 16-bit SFLOAT and 32-bit FLOAT, little-endian.

A value is ``mantissa * 10**exponent``. SFLOAT packs a 4-bit signed exponent above a 12-bit
signed mantissa; FLOAT packs an 8-bit signed exponent above a 24-bit signed mantissa. Five raw
values (all with exponent 0) are not numbers; decoding one raises :class:`DecodeError` naming it.

>>> decode_sfloat(bytes.fromhex("7200"))  # mantissa 114, exponent 0
114.0
>>> encode_float(36.6).hex()
'6e0100ff'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from hardware.gatt.errors import DecodeError, EncodeError

__all__ = [
    "FLOAT",
    "SFLOAT",
    "decode_float",
    "decode_sfloat",
    "encode_float",
    "encode_sfloat",
]


@dataclass(frozen=True, slots=True)
class _Format:
    """One of the two IEEE 11073 floating formats."""

    name: str
    size: int
    mantissa_bits: int
    exponent_bits: int

    @property
    def nan(self) -> int:
        return (1 << (self.mantissa_bits - 1)) - 1

    @property
    def nres(self) -> int:
        return 1 << (self.mantissa_bits - 1)

    @property
    def plus_inf(self) -> int:
        return self.nan - 1

    @property
    def minus_inf(self) -> int:
        return self.nres + 2

    @property
    def reserved(self) -> int:
        return self.nres + 1

    @property
    def specials(self) -> dict[int, str]:
        """Raw values that are not numbers, by name."""
        return {
            self.nan: "NaN",
            self.nres: "NRes (not at this resolution)",
            self.plus_inf: "+INFINITY",
            self.minus_inf: "-INFINITY",
            self.reserved: "reserved for future use",
        }

    @property
    def max_mantissa(self) -> int:
        # The two largest positive and three most negative mantissas spell the special values.
        return self.nan - 2

    @property
    def exponent_range(self) -> tuple[int, int]:
        half = 1 << (self.exponent_bits - 1)
        return -half, half - 1


SFLOAT = _Format("SFLOAT", 2, 12, 4)
FLOAT = _Format("FLOAT", 4, 24, 8)


def _signed(raw: int, bits: int) -> int:
    return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw


def _decode(fmt: _Format, data: bytes) -> float:
    if len(data) != fmt.size:
        raise DecodeError(f"{fmt.name} needs {fmt.size} bytes, got {len(data)}")
    raw = int.from_bytes(data, "little")
    if raw in fmt.specials:
        raise DecodeError(
            f"{fmt.name} 0x{raw:0{fmt.size * 2}X} is {fmt.specials[raw]}, not a number"
        )
    mantissa = _signed(raw & ((1 << fmt.mantissa_bits) - 1), fmt.mantissa_bits)
    exponent = _signed(raw >> fmt.mantissa_bits, fmt.exponent_bits)
    if exponent >= 0:
        return float(mantissa * 10**exponent)
    # One division of two exact integers: the nearest double to the decimal value.
    scale: int = 10**-exponent
    return mantissa / scale


def _pack(fmt: _Format, mantissa: int, exponent: int) -> bytes:
    mbits = mantissa & ((1 << fmt.mantissa_bits) - 1)
    ebits = exponent & ((1 << fmt.exponent_bits) - 1)
    return ((ebits << fmt.mantissa_bits) | mbits).to_bytes(fmt.size, "little")


def _encode(fmt: _Format, value: float, decimals: int | None) -> bytes:
    if math.isnan(value):
        return fmt.nan.to_bytes(fmt.size, "little")
    if math.isinf(value):
        special = fmt.plus_inf if value > 0 else fmt.minus_inf
        return special.to_bytes(fmt.size, "little")
    try:
        # str() is the shortest text that reads back as the same double: 36.6, not 36.600000001.
        exact = Decimal(str(value))
        if decimals is not None:
            exact = exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
    except InvalidOperation as exc:
        raise EncodeError(f"{fmt.name} cannot hold {value!r} to {decimals} decimals") from exc
    sign, digits, exponent = exact.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    mantissa = int("".join(map(str, digits)) or "0")
    low, high = fmt.exponent_range
    # Too many digits: drop the least significant ones (rounding) until the mantissa fits.
    while mantissa > fmt.max_mantissa or exponent < low:
        if exponent >= high:
            break
        mantissa = int((Decimal(mantissa) / 10).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
        exponent += 1
    # An exponent above the range can still be exact if the mantissa has room for zeros.
    while exponent > high and mantissa * 10 <= fmt.max_mantissa:
        mantissa *= 10
        exponent -= 1
    if mantissa > fmt.max_mantissa or not low <= exponent <= high:
        raise EncodeError(f"{fmt.name} cannot hold {value!r}: out of range")
    if mantissa == 0:
        exponent = 0
    return _pack(fmt, -mantissa if sign else mantissa, exponent)


def decode_sfloat(data: bytes) -> float:
    """The number in a 2-byte little-endian SFLOAT; a special value raises DecodeError."""
    return _decode(SFLOAT, data)


def decode_float(data: bytes) -> float:
    """The number in a 4-byte little-endian FLOAT; a special value raises DecodeError."""
    return _decode(FLOAT, data)


def encode_sfloat(value: float, decimals: int | None = None) -> bytes:
    """A 2-byte SFLOAT for ``value``, exact where 12 bits allow.

    ``decimals`` rounds to that many decimal places first (36.6 with ``decimals=1``); without
    it the shortest decimal that reads back as ``value`` is used. NaN and infinities become the
    special values, so simulators can send them too.
    """
    return _encode(SFLOAT, value, decimals)


def encode_float(value: float, decimals: int | None = None) -> bytes:
    """A 4-byte FLOAT for ``value``, exact where 24 bits allow; see :func:`encode_sfloat`."""
    return _encode(FLOAT, value, decimals)
