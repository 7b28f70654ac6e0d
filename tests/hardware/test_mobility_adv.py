"""The mobility advertisement, version 1: its byte layout, validation and round trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.mobility_adv import COMPANY_ID, SIZE, MobilityAdvert
from protocol.errors import InvalidMessage

FLAG_NAMES = ["in_use", "charging", "fault", "low_battery", "tamper"]


def raw(
    version: int = 1,
    vehicle: int = 42,
    charge: int = 80,
    odometer: int = 1200,
    speed: int = 1250,
    flags: int = 0,
    error: int = 0,
) -> bytes:
    """An advert built field by field from the layout table."""
    return (
        bytes([version])
        + vehicle.to_bytes(4, "little")
        + bytes([charge])
        + odometer.to_bytes(4, "little")
        + speed.to_bytes(2, "little")
        + bytes([flags])
        + error.to_bytes(2, "little")
    )


def test_company_id_is_the_sigs_test_id_and_payload_is_15_bytes():
    assert COMPANY_ID == 0xFFFF
    assert SIZE == 15 == len(raw())


def test_fields_decode_from_the_layout():
    advert = MobilityAdvert.decode(raw(vehicle=0xDEADBEEF, odometer=123456, error=0x0102))
    assert advert == MobilityAdvert(
        vehicle_id=0xDEADBEEF,
        state_of_charge=80,
        odometer_m=123456,
        speed_kmh=12.5,
        error_code=0x0102,
    )


@pytest.mark.parametrize(("bit", "name"), list(enumerate(FLAG_NAMES)))
def test_each_status_bit_sets_its_flag(bit, name):
    advert = MobilityAdvert.decode(raw(flags=1 << bit))
    assert {n: getattr(advert, n) for n in FLAG_NAMES} == {n: n == name for n in FLAG_NAMES}


def test_unknown_charge_and_speed_decode_as_none():
    advert = MobilityAdvert.decode(raw(charge=0xFF, speed=0xFFFF))
    assert (advert.state_of_charge, advert.speed_kmh) == (None, None)
    assert advert.encode() == raw(charge=0xFF, speed=0xFFFF)


def test_newer_version_is_refused_naming_it():
    with pytest.raises(InvalidMessage, match="version 2 is newer"):
        MobilityAdvert.decode(raw(version=2) + b"\x00\x00")


def test_version_zero_is_refused():
    with pytest.raises(InvalidMessage, match="version 0"):
        MobilityAdvert.decode(raw(version=0))


@pytest.mark.parametrize("length", [0, 1, 14, 16, 31])
def test_wrong_length_names_expected_and_actual(length):
    data = (raw() + bytes(32))[:length]
    with pytest.raises(InvalidMessage, match="empty" if length == 0 else f"got {length}"):
        MobilityAdvert.decode(data)


def test_every_invalid_field_is_reported_together():
    with pytest.raises(InvalidMessage) as info:
        MobilityAdvert.decode(raw(charge=101, flags=0x80))
    assert len(info.value.reasons) == 2
    assert "state_of_charge 101" in str(info.value)
    assert "reserved bits" in str(info.value)


def test_encoder_refuses_values_the_layout_cannot_carry():
    with pytest.raises(InvalidMessage) as info:
        MobilityAdvert(
            vehicle_id=2**32, state_of_charge=101, odometer_m=-1, speed_kmh=655.35, error_code=70000
        ).encode()
    assert len(info.value.reasons) == 5


# Shared CI cores are slow at times; a deadline would make these flaky, not stricter.
@settings(deadline=None)
@given(
    vehicle_id=st.integers(0, 2**32 - 1),
    state_of_charge=st.none() | st.integers(0, 100),
    odometer_m=st.integers(0, 2**32 - 1),
    speed=st.none() | st.integers(0, 0xFFFE),
    flags=st.lists(st.booleans(), min_size=5, max_size=5),
    error_code=st.integers(0, 0xFFFF),
)
def test_encode_then_decode_gives_the_same_advert(
    vehicle_id, state_of_charge, odometer_m, speed, flags, error_code
):
    advert = MobilityAdvert(
        vehicle_id=vehicle_id,
        state_of_charge=state_of_charge,
        odometer_m=odometer_m,
        speed_kmh=None if speed is None else speed / 100,
        error_code=error_code,
        **dict(zip(FLAG_NAMES, flags, strict=True)),
    )
    data = advert.encode()
    assert len(data) == SIZE
    assert MobilityAdvert.decode(data) == advert
