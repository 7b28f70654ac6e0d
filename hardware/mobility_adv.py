"""The mobility advertisement: what each micro-mobility vehicle broadcasts, version 1.

A vehicle puts this in the manufacturer-specific data of its BLE advertisements; stations read
it passively, without connecting. The company id precedes it on the air; bleak hands over the
bytes after it as ``AdvertisementData.manufacturer_data[company_id]``. ``COMPANY_ID`` is 0xFFFF,
the Bluetooth SIG's id for testing; a city registers its own and passes it in.

Layout, little-endian, exactly 15 bytes:

====== ==== ====== ================================ ============ ==============
offset size type   meaning                          units        invalid value
====== ==== ====== ================================ ============ ==============
0      1    uint8  format version, 1                -            0, or >1 (newer)
1      4    uint32 vehicle id                       -            -
5      1    uint8  state of charge                  %            101..254; 0xFF unknown
6      4    uint32 odometer                         m            -
10     2    uint16 speed                            0.01 km/h    0xFFFF unknown
12     1    uint8  status flags: bit0 in use,       -            bits 5-7 set
                   bit1 charging, bit2 fault,
                   bit3 low battery, bit4 tamper
13     2    uint16 error code, 0 none               -            -
====== ==== ====== ================================ ============ ==============

A later version may grow the payload; a version-1 reader accepts exactly 15 bytes and names any
newer version it meets rather than guessing at its layout.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from protocol.errors import InvalidMessage

#: The Bluetooth SIG's company id for testing; deployments pass their registered one.
COMPANY_ID = 0xFFFF
VERSION = 1
SIZE = 15

_LAYOUT = struct.Struct("<BIBIHBH")
_UNKNOWN_CHARGE = 0xFF
_UNKNOWN_SPEED = 0xFFFF
_FLAGS = ("in_use", "charging", "fault", "low_battery", "tamper")
_RESERVED_FLAGS = 0xE0


@dataclass(frozen=True, slots=True)
class MobilityAdvert:
    """One vehicle's advertised state; ``None`` where the vehicle does not know.

    >>> advert = MobilityAdvert(vehicle_id=42, state_of_charge=80, odometer_m=1200,
    ...                         speed_kmh=12.5, in_use=True)
    >>> MobilityAdvert.decode(advert.encode()) == advert
    True
    """

    vehicle_id: int
    state_of_charge: int | None = None
    odometer_m: int = 0
    speed_kmh: float | None = None
    in_use: bool = False
    charging: bool = False
    fault: bool = False
    low_battery: bool = False
    tamper: bool = False
    error_code: int = 0

    def encode(self) -> bytes:
        """The 15 bytes that follow the company id; a value out of range raises InvalidMessage."""
        reasons: list[str] = []
        _check_range(reasons, "vehicle_id", self.vehicle_id, 0xFFFF_FFFF)
        charge = _UNKNOWN_CHARGE if self.state_of_charge is None else self.state_of_charge
        if self.state_of_charge is not None:
            _check_range(reasons, "state_of_charge", self.state_of_charge, 100)
        _check_range(reasons, "odometer_m", self.odometer_m, 0xFFFF_FFFF)
        speed = _UNKNOWN_SPEED
        if self.speed_kmh is not None:
            speed = round(self.speed_kmh * 100)
            if not 0 <= speed < _UNKNOWN_SPEED:
                reasons.append(f"speed_kmh {self.speed_kmh} is outside 0..655.34")
        _check_range(reasons, "error_code", self.error_code, 0xFFFF)
        if reasons:
            raise InvalidMessage(reasons)
        flags = sum(1 << bit for bit, name in enumerate(_FLAGS) if getattr(self, name))
        return _LAYOUT.pack(
            VERSION, self.vehicle_id, charge, self.odometer_m, speed, flags, self.error_code
        )

    @classmethod
    def decode(cls, data: bytes) -> MobilityAdvert:
        """Read the bytes after the company id; anything off raises InvalidMessage with reasons."""
        if not data:
            raise InvalidMessage(["mobility advert is empty"])
        version = data[0]
        if version > VERSION:
            raise InvalidMessage(
                [f"mobility advert version {version} is newer than this reader's {VERSION}"]
            )
        if version == 0:
            raise InvalidMessage(["mobility advert version 0 does not exist"])
        if len(data) != SIZE:
            raise InvalidMessage([f"mobility advert version 1 is {SIZE} bytes, got {len(data)}"])
        _, vehicle, charge, odometer, speed, flags, error = _LAYOUT.unpack(data)
        reasons: list[str] = []
        if 100 < charge < _UNKNOWN_CHARGE:
            reasons.append(f"state_of_charge {charge} is above 100 %")
        if flags & _RESERVED_FLAGS:
            reasons.append(f"status flags 0x{flags:02X} set reserved bits 5-7")
        if reasons:
            raise InvalidMessage(reasons)
        return cls(
            vehicle_id=vehicle,
            state_of_charge=None if charge == _UNKNOWN_CHARGE else charge,
            odometer_m=odometer,
            speed_kmh=None if speed == _UNKNOWN_SPEED else speed / 100,
            error_code=error,
            **{name: bool(flags & (1 << bit)) for bit, name in enumerate(_FLAGS)},
        )


def _check_range(reasons: list[str], what: str, value: int, top: int) -> None:
    if not 0 <= value <= top:
        reasons.append(f"{what} {value} is outside 0..{top}")
