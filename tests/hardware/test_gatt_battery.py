"""Battery Level (0x2A19)."""

from __future__ import annotations

import pytest

from hardware.errors import DecodeError
from hardware.gatt import decode_battery_level, encode_battery_level
from hardware.gatt.errors import EncodeError


@pytest.mark.parametrize("level", [0, 1, 57, 100])
def test_level_is_a_percentage(level):
    decoded = decode_battery_level(bytes([level]))
    assert decoded.fields == {"battery_pct": level}
    assert decoded.units == {"battery_pct": "%"}
    assert decoded.uuid == 0x2A19


@pytest.mark.parametrize("level", [101, 200, 255])
def test_level_above_100_is_an_error(level):
    with pytest.raises(DecodeError, match=f"{level} % is above 100"):
        decode_battery_level(bytes([level]))


@pytest.mark.parametrize("payload", [b"", b"\x10\x00"])
def test_wrong_length_names_expected_and_actual(payload):
    with pytest.raises(DecodeError, match=f"expected 1 byte, got {len(payload)}"):
        decode_battery_level(payload)


def test_encoder_round_trips_and_refuses_impossible_levels():
    assert all(
        decode_battery_level(encode_battery_level(percent=p)).fields["battery_pct"] == p
        for p in range(101)
    )
    with pytest.raises(EncodeError, match="101"):
        encode_battery_level(percent=101)
