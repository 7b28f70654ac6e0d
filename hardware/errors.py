"""Errors of hardware access: decoding, GPIO and BLE."""

from __future__ import annotations

from protocol.errors import MachikadoError


class HardwareError(MachikadoError):
    """Root of hardware access errors."""


class DecodeError(HardwareError):
    """A payload that cannot be decoded into a measurement (truncated, oversized, special value)."""


class GpioError(HardwareError):
    """No usable GPIO pin factory, or a pin that cannot be used."""


class BleError(HardwareError):
    """A BLE adapter, scanner or connection failed."""
