"""Weight Measurement (0x2A9D): every flag combination from hand-built payloads."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.errors import DecodeError
from hardware.gatt import decode_weight_measurement, encode_weight_measurement

TIME = b"\xea\x07\x05\x01\x09\x1e\x00"  # 2026-05-01 09:30:00
AT = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
FLAG_SETS = list(itertools.product([False, True], repeat=4))


def build(imperial: bool, stamped: bool, user: bool, bmi: bool) -> tuple[bytes, dict[str, object]]:
    flags = imperial | stamped << 1 | user << 2 | bmi << 3
    payload = bytes([flags]) + b"\xb0\x36"  # 14000
    fields: dict[str, object] = (
        {"weight_lb": 140.0, "weight_kg": 63.503} if imperial else {"weight_kg": 70.0}
    )
    if stamped:
        payload += TIME
    if user:
        payload += b"\x03"
        fields["user_id"] = 3
    if bmi:
        payload += b"\xdd\x00"  # 22.1
        if imperial:
            payload += b"\xbc\x02"  # 70.0 in
            fields.update(bmi=22.1, height_in=70.0, height_m=1.778)
        else:
            payload += b"\xd6\x06"  # 1.750 m
            fields.update(bmi=22.1, height_m=1.75)
    return payload, fields


@pytest.mark.parametrize("flags", FLAG_SETS)
def test_every_flag_combination_decodes_its_fields(flags):
    payload, fields = build(*flags)
    decoded = decode_weight_measurement(payload)
    assert decoded.characteristic == "weight_measurement"
    assert decoded.uuid == 0x2A9D
    assert decoded.fields == fields
    assert decoded.at == (AT if flags[1] else None)


@pytest.mark.parametrize("flags", FLAG_SETS)
def test_truncated_or_oversized_payload_names_expected_and_actual_length(flags):
    payload, _ = build(*flags)
    n = len(payload)
    with pytest.raises(DecodeError, match=f"need {n} bytes, got {n - 1}"):
        decode_weight_measurement(payload[:-1])
    with pytest.raises(DecodeError, match=f"need {n} bytes, got {n + 1}"):
        decode_weight_measurement(payload + b"\x00")


def test_units_follow_the_unit_flag():
    assert decode_weight_measurement(build(False, False, False, True)[0]).units == {
        "weight_kg": "kg",
        "bmi": "kg/m2",
        "height_m": "m",
    }
    assert decode_weight_measurement(build(True, False, False, True)[0]).units == {
        "weight_lb": "lb",
        "weight_kg": "kg",
        "bmi": "kg/m2",
        "height_in": "in",
        "height_m": "m",
    }


def test_unsuccessful_measurement_is_an_error():
    with pytest.raises(DecodeError, match="unsuccessful"):
        decode_weight_measurement(b"\x00\xff\xff")


def test_unknown_user_gives_no_user_id():
    assert "user_id" not in decode_weight_measurement(b"\x04\xb0\x36\xff").fields


def test_empty_payload_is_an_error():
    with pytest.raises(DecodeError, match="got 0"):
        decode_weight_measurement(b"")


def test_unknown_date_gives_no_timestamp():
    assert decode_weight_measurement(b"\x02\xb0\x36" + bytes(7)).at is None


# Shared CI cores are slow at times; a deadline would make these flaky, not stricter.
@settings(deadline=None)
@given(
    weight=st.integers(0, 0xFFFE),
    imperial=st.booleans(),
    at=st.none()
    | st.datetimes(datetime(1582, 1, 1), datetime(9999, 12, 31), timezones=st.just(UTC)),
    user_id=st.none() | st.integers(0, 254),
    bmi_height=st.none() | st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
)
def test_encoder_output_decodes_to_the_same_values(weight, imperial, at, user_id, bmi_height):
    value = weight / 100 if imperial else weight * 5 / 1000
    bmi = height = None
    if bmi_height is not None:
        bmi = bmi_height[0] / 10
        height = bmi_height[1] / 10 if imperial else bmi_height[1] / 1000
    payload = encode_weight_measurement(
        weight=value, imperial=imperial, at=at, user_id=user_id, bmi=bmi, height=height
    )
    decoded = decode_weight_measurement(payload)
    assert decoded.fields["weight_lb" if imperial else "weight_kg"] == value
    assert decoded.fields.get("user_id") == user_id
    assert decoded.fields.get("bmi") == bmi
    assert decoded.fields.get("height_in" if imperial else "height_m") == height
    assert decoded.at == (None if at is None else at.replace(microsecond=0))
