"""GATT characteristic decoders and encoders, and a registry to find one by name or UUID.

Decoders are plain functions ``bytes -> Decoded`` (with an optional ``tz=`` for the device's
clock); encoders build valid payloads from values, for simulated devices and tests.

>>> decode = decoder_for("2A19")
>>> decode(bytes([87])).fields
{'battery_pct': 87}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Protocol

from hardware.gatt import (
    battery,
    blood_pressure,
    csc,
    location_speed,
    mobility,
    temperature,
    weight,
)
from hardware.gatt.battery import decode_battery_level, encode_battery_level
from hardware.gatt.blood_pressure import (
    MeasurementStatus,
    decode_blood_pressure_measurement,
    encode_blood_pressure_measurement,
)
from hardware.gatt.csc import CscMotion, csc_motion, decode_csc_measurement, encode_csc_measurement
from hardware.gatt.decoded import Decoded, FieldValue
from hardware.gatt.errors import DecodeError, EncodeError
from hardware.gatt.location_speed import decode_location_and_speed, encode_location_and_speed
from hardware.gatt.mobility import decode_mobility_advert, encode_mobility_advert
from hardware.gatt.temperature import (
    decode_temperature_measurement,
    encode_temperature_measurement,
)
from hardware.gatt.weight import decode_weight_measurement, encode_weight_measurement

__all__ = [
    "CHARACTERISTICS",
    "ENCODERS",
    "Characteristic",
    "CscMotion",
    "DecodeError",
    "Decoded",
    "Decoder",
    "EncodeError",
    "FieldValue",
    "MeasurementStatus",
    "characteristic_for",
    "csc_motion",
    "decode_battery_level",
    "decode_blood_pressure_measurement",
    "decode_csc_measurement",
    "decode_location_and_speed",
    "decode_mobility_advert",
    "decode_temperature_measurement",
    "decode_weight_measurement",
    "decoder_for",
    "encode_battery_level",
    "encode_blood_pressure_measurement",
    "encode_csc_measurement",
    "encode_location_and_speed",
    "encode_mobility_advert",
    "encode_temperature_measurement",
    "encode_weight_measurement",
]


class Decoder(Protocol):
    """A decoder: ``Callable[[bytes], Decoded]`` that also takes the device clock's zone.

    >>> from zoneinfo import ZoneInfo
    >>> decode: Decoder = decoder_for("temperature")
    >>> decode(bytes.fromhex("026e0100ffea070501091e00"), tz=ZoneInfo("Asia/Tokyo")).at.hour
    9
    """

    def __call__(self, data: bytes, /, *, tz: tzinfo = UTC) -> Decoded: ...


@dataclass(frozen=True, slots=True)
class Characteristic:
    """A decodable payload kind: its name, 16-bit UUID (None for adverts) and short aliases.

    >>> characteristic_for("0x2A19").name
    'battery_level'
    """

    name: str
    uuid: int | None
    aliases: tuple[str, ...]
    decode: Decoder
    encode: Callable[..., bytes]


CHARACTERISTICS: tuple[Characteristic, ...] = (
    Characteristic(
        weight.NAME, weight.UUID, ("weight",), decode_weight_measurement, encode_weight_measurement
    ),
    Characteristic(
        blood_pressure.NAME,
        blood_pressure.UUID,
        ("blood_pressure", "bp"),
        decode_blood_pressure_measurement,
        encode_blood_pressure_measurement,
    ),
    Characteristic(
        temperature.NAME,
        temperature.UUID,
        ("temperature",),
        decode_temperature_measurement,
        encode_temperature_measurement,
    ),
    Characteristic(
        battery.NAME, battery.UUID, ("battery",), decode_battery_level, encode_battery_level
    ),
    Characteristic(csc.NAME, csc.UUID, ("csc",), decode_csc_measurement, encode_csc_measurement),
    Characteristic(
        location_speed.NAME,
        location_speed.UUID,
        ("location_speed", "location"),
        decode_location_and_speed,
        encode_location_and_speed,
    ),
    Characteristic(
        mobility.NAME, None, ("mobility",), decode_mobility_advert, encode_mobility_advert
    ),
)

#: Encoder of each characteristic, by name: ``ENCODERS["battery_level"](percent=87)``.
ENCODERS: dict[str, Callable[..., bytes]] = {c.name: c.encode for c in CHARACTERISTICS}

_BY_NAME = {alias: c for c in CHARACTERISTICS for alias in (c.name, *c.aliases)}
_BY_UUID = {c.uuid: c for c in CHARACTERISTICS if c.uuid is not None}
_SHORT_UUID = re.compile(r"(?:0x)?([0-9a-f]{4})")
# 16-bit UUIDs sit inside the Bluetooth Base UUID 0000xxxx-0000-1000-8000-00805F9B34FB.
_BASE_UUID = re.compile(r"0000([0-9a-f]{4})-0000-1000-8000-00805f9b34fb")


def characteristic_for(name_or_uuid: str) -> Characteristic:
    """The characteristic named by ``2a1c``, ``0x2A1C``, its 128-bit UUID, name or alias."""
    key = name_or_uuid.strip().lower()
    found = _BY_NAME.get(key.replace("-", "_").replace(" ", "_"))
    if found is None:
        match = _SHORT_UUID.fullmatch(key) or _BASE_UUID.fullmatch(key)
        if match is not None:
            found = _BY_UUID.get(int(match.group(1), 16))
    if found is None:
        known = ", ".join(f"{c.name} ({_label(c)})" for c in CHARACTERISTICS)
        raise DecodeError(f"unknown characteristic {name_or_uuid!r}; known: {known}")
    return found


def _label(characteristic: Characteristic) -> str:
    uuid = characteristic.uuid
    return "advert" if uuid is None else f"0x{uuid:04X}"


def decoder_for(name_or_uuid: str) -> Decoder:
    """The decoder for a characteristic given as ``2a1c``, ``0x2A1C``, UUID, name or alias."""
    return characteristic_for(name_or_uuid).decode
