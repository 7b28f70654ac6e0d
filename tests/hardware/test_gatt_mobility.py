"""The mobility advertisement read as a Decoded reading."""

from __future__ import annotations

import pytest

from hardware.errors import DecodeError
from hardware.gatt import decode_mobility_advert, encode_mobility_advert
from hardware.mobility_adv import COMPANY_ID

# version 1, vehicle 42, 80 %, 1200 m, 12.50 km/h, in use + low battery, error 0x0102
ADVERT = bytes.fromhex("012a00000050b0040000e204090201")


def test_advert_becomes_fields_with_units():
    decoded = decode_mobility_advert(ADVERT)
    assert decoded.characteristic == "mobility_advert"
    assert decoded.uuid == COMPANY_ID
    assert decoded.at is None
    assert decoded.fields == {
        "vehicle_id": 42,
        "state_of_charge_pct": 80,
        "odometer_m": 1200,
        "speed_kmh": 12.5,
        "speed_m_s": 3.4722,
        "in_use": True,
        "charging": False,
        "fault": False,
        "low_battery": True,
        "tamper": False,
        "error_code": 0x0102,
    }
    assert decoded.units == {
        "state_of_charge_pct": "%",
        "odometer_m": "m",
        "speed_kmh": "km/h",
        "speed_m_s": "m/s",
    }


def test_unknown_charge_and_speed_are_left_out():
    fields = decode_mobility_advert(encode_mobility_advert(vehicle_id=7)).fields
    assert "state_of_charge_pct" not in fields
    assert "speed_kmh" not in fields
    assert fields["vehicle_id"] == 7


def test_broken_advert_is_a_decode_error_with_the_reason():
    with pytest.raises(DecodeError, match="version 2 is newer"):
        decode_mobility_advert(b"\x02" + ADVERT[1:])
    with pytest.raises(DecodeError, match="15 bytes, got 14"):
        decode_mobility_advert(ADVERT[:-1])
