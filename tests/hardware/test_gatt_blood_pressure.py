"""Blood Pressure Measurement (0x2A35): every flag combination, status bits, special values."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.errors import DecodeError
from hardware.gatt import (
    MeasurementStatus,
    decode_blood_pressure_measurement,
    encode_blood_pressure_measurement,
)

TIME = b"\xea\x07\x05\x01\x09\x1e\x00"  # 2026-05-01 09:30:00
AT = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
MMHG = b"\x78\x00" + b"\x50\x00" + b"\x5d\x00"  # 120, 80, 93
KPA = b"\xa0\xf0" + b"\x6b\xf0" + b"\x7c\xf0"  # 16.0, 10.7, 12.4
FLAG_SETS = list(itertools.product([False, True], repeat=5))
NO_STATUS = {
    "body_movement": False,
    "cuff_too_loose": False,
    "irregular_pulse": False,
    "pulse_rate_range": "within",
    "improper_position": False,
}


def build(kpa: bool, stamped: bool, pulse: bool, user: bool, status: bool):
    flags = kpa | stamped << 1 | pulse << 2 | user << 3 | status << 4
    payload = bytes([flags]) + (KPA if kpa else MMHG)
    fields: dict[str, object] = (
        {
            "systolic_kpa": 16.0,
            "systolic_mmhg": 120.0,
            "diastolic_kpa": 10.7,
            "diastolic_mmhg": 80.3,
            "mean_arterial_kpa": 12.4,
            "mean_arterial_mmhg": 93.0,
        }
        if kpa
        else {"systolic_mmhg": 120.0, "diastolic_mmhg": 80.0, "mean_arterial_mmhg": 93.0}
    )
    if stamped:
        payload += TIME
    if pulse:
        payload += b"\x48\x00"
        fields["pulse_bpm"] = 72.0
    if user:
        payload += b"\x01"
        fields["user_id"] = 1
    if status:
        payload += b"\x00\x00"
        fields.update(NO_STATUS)
    return payload, fields


@pytest.mark.parametrize("flags", FLAG_SETS)
def test_every_flag_combination_decodes_its_fields(flags):
    payload, fields = build(*flags)
    decoded = decode_blood_pressure_measurement(payload)
    assert decoded.uuid == 0x2A35
    assert decoded.fields == fields
    assert decoded.at == (AT if flags[1] else None)
    assert decoded.units["systolic_mmhg"] == "mmHg"


@pytest.mark.parametrize("flags", FLAG_SETS)
def test_truncated_or_oversized_payload_names_expected_and_actual_length(flags):
    payload, _ = build(*flags)
    n = len(payload)
    with pytest.raises(DecodeError, match=f"need {n} bytes, got {n - 1}"):
        decode_blood_pressure_measurement(payload[:-1])
    with pytest.raises(DecodeError, match=f"need {n} bytes, got {n + 1}"):
        decode_blood_pressure_measurement(payload + b"\x00")


@pytest.mark.parametrize(
    ("raw", "changed"),
    [
        (0x0001, {"body_movement": True}),
        (0x0002, {"cuff_too_loose": True}),
        (0x0004, {"irregular_pulse": True}),
        (0x0008, {"pulse_rate_range": "above_upper"}),
        (0x0010, {"pulse_rate_range": "below_lower"}),
        (0x0020, {"improper_position": True}),
        (0xFFC0, {}),  # reserved bits 6-15 are ignored
    ],
)
def test_measurement_status_bits_become_named_fields(raw, changed):
    payload = b"\x10" + MMHG + raw.to_bytes(2, "little")
    fields = decode_blood_pressure_measurement(payload).fields
    assert {k: fields[k] for k in NO_STATUS} == {**NO_STATUS, **changed}


def test_reserved_pulse_rate_range_is_an_error():
    with pytest.raises(DecodeError, match="reserved pulse range"):
        decode_blood_pressure_measurement(b"\x10" + MMHG + b"\x18\x00")


def test_special_value_in_a_pressure_names_the_field_and_value():
    with pytest.raises(DecodeError, match=r"mean_arterial.*NaN"):
        decode_blood_pressure_measurement(b"\x00\x78\x00\x50\x00\xff\x07")


def test_special_value_in_pulse_rate_is_an_error():
    with pytest.raises(DecodeError, match=r"pulse rate.*NRes"):
        decode_blood_pressure_measurement(b"\x04" + MMHG + b"\x00\x08")


statuses = st.builds(
    MeasurementStatus,
    body_movement=st.booleans(),
    cuff_too_loose=st.booleans(),
    irregular_pulse=st.booleans(),
    pulse_rate_range=st.sampled_from(["within", "above_upper", "below_lower"]),
    improper_position=st.booleans(),
)


# Shared CI cores are slow at times; a deadline would make these flaky, not stricter.
@settings(deadline=None)
@given(
    pressures=st.tuples(*[st.integers(0, 2045)] * 3),
    kpa=st.booleans(),
    pulse=st.none() | st.integers(0, 300),
    user_id=st.none() | st.integers(0, 254),
    status=st.none() | statuses,
)
def test_encoder_output_decodes_to_the_same_values(pressures, kpa, pulse, user_id, status):
    systolic, diastolic, mean = (p / 10 if kpa else float(p) for p in pressures)
    payload = encode_blood_pressure_measurement(
        systolic=systolic,
        diastolic=diastolic,
        mean_arterial=mean,
        kpa=kpa,
        pulse_bpm=pulse,
        user_id=user_id,
        status=status,
    )
    fields = decode_blood_pressure_measurement(payload).fields
    unit = "kpa" if kpa else "mmhg"
    assert (fields[f"systolic_{unit}"], fields[f"diastolic_{unit}"]) == (systolic, diastolic)
    assert fields[f"mean_arterial_{unit}"] == mean
    assert fields.get("pulse_bpm") == pulse
    assert fields.get("user_id") == user_id
    if status is not None:
        assert {k: fields[k] for k in NO_STATUS} == {k: getattr(status, k) for k in NO_STATUS}
