"""Temperature Measurement (0x2A1C): every flag combination, body sites, special values."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.errors import DecodeError
from hardware.gatt import decode_temperature_measurement, encode_temperature_measurement

TIME = b"\xea\x07\x05\x01\x09\x1e\x00"  # 2026-05-01 09:30:00
FLAG_SETS = list(itertools.product([False, True], repeat=3))
SITES = [
    "armpit",
    "body",
    "ear",
    "finger",
    "gastrointestinal",
    "mouth",
    "rectum",
    "toe",
    "tympanum",
]


def build(fahrenheit: bool, stamped: bool, typed: bool):
    flags = fahrenheit | stamped << 1 | typed << 2
    if fahrenheit:
        payload = bytes([flags]) + b"\xd3\x03\x00\xff"  # 97.9
        fields: dict[str, object] = {"temperature_f": 97.9, "temperature_c": 36.61}
    else:
        payload = bytes([flags]) + b"\x6e\x01\x00\xff"  # 36.6
        fields = {"temperature_c": 36.6}
    if stamped:
        payload += TIME
    if typed:
        payload += b"\x06"
        fields["temperature_type"] = "mouth"
    return payload, fields


@pytest.mark.parametrize("flags", FLAG_SETS)
def test_every_flag_combination_decodes_its_fields(flags):
    payload, fields = build(*flags)
    decoded = decode_temperature_measurement(payload)
    assert decoded.uuid == 0x2A1C
    assert decoded.fields == fields
    assert decoded.units["temperature_c"] == "Cel"
    assert decoded.at == (datetime(2026, 5, 1, 9, 30, tzinfo=UTC) if flags[1] else None)


@pytest.mark.parametrize("flags", FLAG_SETS)
def test_truncated_or_oversized_payload_names_expected_and_actual_length(flags):
    payload, _ = build(*flags)
    n = len(payload)
    with pytest.raises(DecodeError, match=f"need {n} bytes, got {n - 1}"):
        decode_temperature_measurement(payload[:-1])
    with pytest.raises(DecodeError, match=f"need {n} bytes, got {n + 1}"):
        decode_temperature_measurement(payload + b"\x00")


def test_time_stamp_is_read_in_the_devices_zone():
    tokyo = ZoneInfo("Asia/Tokyo")
    decoded = decode_temperature_measurement(build(False, True, False)[0], tz=tokyo)
    assert decoded.at == datetime(2026, 5, 1, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(("code", "site"), list(enumerate(SITES, start=1)))
def test_temperature_type_names_the_body_site(code, site):
    payload = b"\x04\x6e\x01\x00\xff" + bytes([code])
    assert decode_temperature_measurement(payload).fields["temperature_type"] == site


@pytest.mark.parametrize("code", [0, 10, 255])
def test_reserved_temperature_type_is_an_error(code):
    with pytest.raises(DecodeError, match=f"temperature type {code} is reserved"):
        decode_temperature_measurement(b"\x04\x6e\x01\x00\xff" + bytes([code]))


@pytest.mark.parametrize(
    ("raw", "name"),
    [(b"\xff\xff\x7f\x00", "NaN"), (b"\x00\x00\x80\x00", "NRes"), (b"\xfe\xff\x7f\x00", "+INF")],
)
def test_special_temperature_value_is_an_error(raw, name):
    with pytest.raises(DecodeError, match=re.escape(name)):
        decode_temperature_measurement(b"\x00" + raw)


# Shared CI cores are slow at times; a deadline would make these flaky, not stricter.
@settings(deadline=None)
@given(
    tenths=st.integers(-1000, 5000),
    fahrenheit=st.booleans(),
    site=st.none() | st.sampled_from(SITES),
    at=st.none() | st.datetimes(datetime(1582, 1, 1), timezones=st.just(UTC)),
)
def test_encoder_output_decodes_to_the_same_values(tenths, fahrenheit, site, at):
    value = tenths / 10
    payload = encode_temperature_measurement(
        temperature=value, fahrenheit=fahrenheit, temperature_type=site, at=at
    )
    decoded = decode_temperature_measurement(payload)
    assert decoded.fields["temperature_f" if fahrenheit else "temperature_c"] == value
    assert decoded.fields.get("temperature_type") == site
    assert decoded.at == (None if at is None else at.replace(microsecond=0))
