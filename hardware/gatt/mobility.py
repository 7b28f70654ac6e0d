"""The mobility advertisement (``hardware.mobility_adv``) as a :class:`Decoded` reading.

Its ``uuid`` is the company id the advert was filed under, since adverts carry no GATT UUID.
"""

from __future__ import annotations

from datetime import UTC, tzinfo

from hardware.gatt.decoded import Decoded, FieldValue
from hardware.gatt.errors import DecodeError
from hardware.mobility_adv import COMPANY_ID, MobilityAdvert
from protocol.errors import InvalidMessage

NAME = "mobility_advert"
_KMH_PER_M_S = 3.6


def decode_mobility_advert(data: bytes, *, tz: tzinfo = UTC) -> Decoded:
    """Decode a vehicle's manufacturer data; ``tz`` is unused (adverts carry no time)."""
    try:
        advert = MobilityAdvert.decode(data)
    except InvalidMessage as exc:
        raise DecodeError(f"{NAME}: {exc}") from exc
    fields: dict[str, FieldValue] = {"vehicle_id": advert.vehicle_id}
    units: dict[str, str] = {}
    if advert.state_of_charge is not None:
        fields["state_of_charge_pct"] = advert.state_of_charge
        units["state_of_charge_pct"] = "%"
    fields["odometer_m"] = advert.odometer_m
    units["odometer_m"] = "m"
    if advert.speed_kmh is not None:
        fields["speed_kmh"] = advert.speed_kmh
        fields["speed_m_s"] = round(advert.speed_kmh / _KMH_PER_M_S, 4)
        units.update(speed_kmh="km/h", speed_m_s="m/s")
    fields.update(
        in_use=advert.in_use,
        charging=advert.charging,
        fault=advert.fault,
        low_battery=advert.low_battery,
        tamper=advert.tamper,
        error_code=advert.error_code,
    )
    return Decoded(NAME, COMPANY_ID, fields, units)


def encode_mobility_advert(
    *,
    vehicle_id: int,
    state_of_charge: int | None = None,
    odometer_m: int = 0,
    speed_kmh: float | None = None,
    in_use: bool = False,
    charging: bool = False,
    fault: bool = False,
    low_battery: bool = False,
    tamper: bool = False,
    error_code: int = 0,
) -> bytes:
    """The manufacturer data of a vehicle in this state (see :class:`MobilityAdvert`)."""
    return MobilityAdvert(
        vehicle_id=vehicle_id,
        state_of_charge=state_of_charge,
        odometer_m=odometer_m,
        speed_kmh=speed_kmh,
        in_use=in_use,
        charging=charging,
        fault=fault,
        low_battery=low_battery,
        tamper=tamper,
        error_code=error_code,
    ).encode()
