"""Location and Speed (0x2A67): every presence-flag combination and every flag-borne enum."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.errors import DecodeError
from hardware.gatt import decode_location_and_speed, encode_location_and_speed

TIME = b"\xea\x07\x05\x01\x09\x1e\x00"  # 2026-05-01 09:30:00 UTC
PARTS: list[tuple[bytes, dict[str, object]]] = [
    (b"\xa4\x01", {"speed_m_s": 4.2}),
    (b"\x39\x30\x00", {"total_distance_m": 1234.5}),
    (
        b"\xa8\xc0\x81\x15" + b"\x48\x59\x83\x53",
        {"latitude_deg": 36.0825, "longitude_deg": 140.1117},
    ),
    (b"\xa2\xfe\xff", {"elevation_m": -3.5, "elevation_source": "positioning_system"}),
    (b"\x9f\x8c", {"heading_deg": 359.99, "heading_source": "movement"}),
    (b"\x07", {"rolling_time_s": 7}),
    (TIME, {}),
]
FLAG_SETS = list(itertools.product([False, True], repeat=7))


def build(present: tuple[bool, ...]):
    flags = sum(1 << i for i, on in enumerate(present) if on)
    payload = flags.to_bytes(2, "little")
    fields: dict[str, object] = {"position_status": "none"}
    if present[0] or present[1]:
        fields["speed_distance_format"] = "2d"
    for on, (raw, values) in zip(present, PARTS, strict=True):
        if on:
            payload += raw
            fields.update(values)
    return payload, fields


@pytest.mark.parametrize("present", FLAG_SETS)
def test_every_flag_combination_decodes_its_fields(present):
    payload, fields = build(present)
    decoded = decode_location_and_speed(payload)
    assert decoded.uuid == 0x2A67
    assert decoded.fields == fields
    assert decoded.at == (datetime(2026, 5, 1, 9, 30, tzinfo=UTC) if present[6] else None)


@pytest.mark.parametrize("present", FLAG_SETS)
def test_truncated_or_oversized_payload_names_expected_and_actual_length(present):
    payload, _ = build(present)
    n = len(payload)
    if n > 2:
        with pytest.raises(DecodeError, match=f"need {n} bytes, got {n - 1}"):
            decode_location_and_speed(payload[:-1])
    with pytest.raises(DecodeError, match=f"need {n} bytes, got {n + 1}"):
        decode_location_and_speed(payload + b"\x00")


@pytest.mark.parametrize(
    ("bits", "expected"),
    [
        (0b00 << 7, {"position_status": "none"}),
        (0b01 << 7, {"position_status": "ok"}),
        (0b10 << 7, {"position_status": "estimated"}),
        (0b11 << 7, {"position_status": "last_known"}),
        (0, {"speed_distance_format": "2d"}),
        (1 << 9, {"speed_distance_format": "3d"}),
        (0b00 << 10, {"elevation_source": "positioning_system"}),
        (0b01 << 10, {"elevation_source": "barometric"}),
        (0b10 << 10, {"elevation_source": "database"}),
        (0b11 << 10, {"elevation_source": "other"}),
        (0, {"heading_source": "movement"}),
        (1 << 12, {"heading_source": "magnetic_compass"}),
    ],
)
def test_status_bits_in_the_flags_become_named_fields(bits, expected):
    flags = 0b11011 | bits  # speed, distance, elevation and heading present
    payload = flags.to_bytes(2, "little") + PARTS[0][0] + PARTS[1][0] + PARTS[3][0] + PARTS[4][0]
    fields = decode_location_and_speed(payload).fields
    assert {k: fields[k] for k in expected} == expected


def test_southern_and_western_hemispheres_are_negative():
    payload = b"\x04\x00" + (-338688000).to_bytes(4, "little", signed=True)
    payload += (-700000000).to_bytes(4, "little", signed=True)
    fields = decode_location_and_speed(payload).fields
    assert (fields["latitude_deg"], fields["longitude_deg"]) == (-33.8688, -70.0)


def test_location_off_the_globe_is_an_error():
    payload = b"\x04\x00" + (910000000).to_bytes(4, "little") + bytes(4)
    with pytest.raises(DecodeError, match="off the globe"):
        decode_location_and_speed(payload)


def test_heading_of_360_or_more_is_an_error():
    with pytest.raises(DecodeError, match=r"heading 360\.0"):
        decode_location_and_speed(b"\x10\x00" + (36000).to_bytes(2, "little"))


def test_utc_time_stays_utc_whatever_zone_is_given():
    decoded = decode_location_and_speed(b"\x40\x00" + TIME, tz=ZoneInfo("Asia/Tokyo"))
    assert decoded.at == datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


def test_one_byte_is_too_short_for_the_flags():
    with pytest.raises(DecodeError, match="at least 2 bytes"):
        decode_location_and_speed(b"\x01")


# Shared CI cores are slow at times; a deadline would make these flaky, not stricter.
@settings(deadline=None)
@given(
    speed=st.none() | st.integers(0, 0xFFFF),
    distance=st.none() | st.integers(0, 0xFFFFFF),
    location=st.none()
    | st.tuples(st.integers(-900000000, 900000000), st.integers(-1800000000, 1800000000)),
    elevation=st.none() | st.integers(-(2**23), 2**23 - 1),
    heading=st.none() | st.integers(0, 35999),
    rolling=st.none() | st.integers(0, 255),
    at=st.none() | st.datetimes(datetime(1582, 1, 1), timezones=st.just(UTC)),
    status=st.sampled_from(["none", "ok", "estimated", "last_known"]),
    three_d=st.booleans(),
)
def test_encoder_output_decodes_to_the_same_values(
    speed, distance, location, elevation, heading, rolling, at, status, three_d
):
    values = {
        "speed_m_s": None if speed is None else speed / 100,
        "total_distance_m": None if distance is None else distance / 10,
        "latitude_deg": None if location is None else location[0] / 10**7,
        "longitude_deg": None if location is None else location[1] / 10**7,
        "elevation_m": None if elevation is None else elevation / 100,
        "heading_deg": None if heading is None else heading / 100,
        "rolling_time_s": rolling,
    }
    payload = encode_location_and_speed(**values, at=at, position_status=status, three_d=three_d)
    decoded = decode_location_and_speed(payload)
    assert {k: decoded.fields.get(k) for k in values} == values
    assert decoded.fields["position_status"] == status
    assert decoded.at == (None if at is None else at.replace(microsecond=0))
