"""Finding a decoder by name or UUID, the encoders table, and the JSON form of a reading."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from hardware.errors import DecodeError
from hardware.gatt import (
    CHARACTERISTICS,
    ENCODERS,
    Decoded,
    decode_temperature_measurement,
    decoder_for,
)
from protocol.limits import KEY


@pytest.mark.parametrize(
    "spelling",
    [
        "2a1c",
        "2A1C",
        "0x2A1C",
        "0x2a1c",
        "00002a1c-0000-1000-8000-00805f9b34fb",
        "00002A1C-0000-1000-8000-00805F9B34FB",
        "temperature_measurement",
        "temperature",
        " Temperature ",
    ],
)
def test_every_spelling_finds_the_temperature_decoder(spelling):
    assert decoder_for(spelling) is decode_temperature_measurement


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("weight", "weight_measurement"),
        ("2A9D", "weight_measurement"),
        ("blood_pressure", "blood_pressure_measurement"),
        ("0x2A35", "blood_pressure_measurement"),
        ("battery", "battery_level"),
        ("csc", "csc_measurement"),
        ("2a5b", "csc_measurement"),
        ("location_speed", "location_and_speed"),
        ("0x2A67", "location_and_speed"),
        ("mobility", "mobility_advert"),
    ],
)
def test_aliases_and_uuids_find_their_characteristic(spelling, name):
    assert {c.name: c.decode for c in CHARACTERISTICS}[name] is decoder_for(spelling)


@pytest.mark.parametrize("spelling", ["2a00", "heart_rate", "00002a1c-0000-1000-8000-00805f9b34fc"])
def test_unknown_characteristic_lists_the_known_names(spelling):
    with pytest.raises(DecodeError) as info:
        decoder_for(spelling)
    message = str(info.value)
    assert repr(spelling) in message
    assert all(c.name in message for c in CHARACTERISTICS)


SAMPLES: dict[str, dict[str, object]] = {
    "weight_measurement": {"weight": 70.0, "user_id": 1, "bmi": 22.9, "height": 1.75},
    "blood_pressure_measurement": {"systolic": 120, "diastolic": 80, "mean_arterial": 93},
    "temperature_measurement": {"temperature": 36.6, "temperature_type": "ear"},
    "battery_level": {"percent": 87},
    "csc_measurement": {"wheel_revolutions": 10, "wheel_event_time_s": 1.0},
    "location_and_speed": {"speed_m_s": 4.2, "latitude_deg": 36.08, "longitude_deg": 140.11},
    "mobility_advert": {"vehicle_id": 42, "state_of_charge": 80, "speed_kmh": 12.5},
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_encoder_makes_a_payload_its_decoder_reads(name):
    decoded = decoder_for(name)(ENCODERS[name](**SAMPLES[name]))
    assert decoded.characteristic == name
    assert decoded.fields
    assert all(KEY.fullmatch(key) for key in decoded.fields)
    assert set(decoded.units) <= set(decoded.fields)


def test_every_characteristic_has_an_encoder():
    assert set(ENCODERS) == {c.name for c in CHARACTERISTICS} == set(SAMPLES)


def test_json_form_names_uuid_in_hex_and_time_with_its_offset():
    at = datetime(2026, 5, 1, 9, 30, tzinfo=timezone(timedelta(hours=9)))
    decoded = Decoded("temperature_measurement", 0x2A1C, {"temperature_c": 36.6}, {}, at)
    assert json.loads(json.dumps(decoded.to_json())) == {
        "characteristic": "temperature_measurement",
        "uuid": "0x2A1C",
        "at": "2026-05-01T09:30:00+09:00",
        "fields": {"temperature_c": 36.6},
        "units": {},
    }
    assert Decoded("battery_level", 0x2A19, at=None).to_json()["at"] is None
