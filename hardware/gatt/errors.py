"""Errors of the GATT codecs: a payload that cannot be decoded, a value that cannot be encoded."""

from __future__ import annotations

from hardware.errors import DecodeError, HardwareError

__all__ = ["DecodeError", "EncodeError"]


class EncodeError(HardwareError, ValueError):
    """A value that no valid payload can carry (out of range, too many digits, wrong type)."""
