"""CSC Measurement (0x2A5B) and the speed and distance between two measurements."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.errors import DecodeError
from hardware.gatt import (
    csc_motion,
    decode_battery_level,
    decode_csc_measurement,
    encode_csc_measurement,
)
from hardware.gatt.decoded import Decoded

WHEEL = b"\x10\x27\x00\x00" + b"\x00\x04"  # 10000 revolutions, event at 1024/1024 s
CRANK = b"\x2c\x01" + b"\x00\x08"  # 300 revolutions, event at 2048/1024 s
FLAG_SETS = list(itertools.product([False, True], repeat=2))


def build(wheel: bool, crank: bool):
    payload = bytes([wheel | crank << 1])
    fields: dict[str, object] = {}
    if wheel:
        payload += WHEEL
        fields.update(wheel_revolutions=10000, wheel_event_time_s=1.0)
    if crank:
        payload += CRANK
        fields.update(crank_revolutions=300, crank_event_time_s=2.0)
    return payload, fields


def measurement(
    wheel: int | None = None,
    wheel_ticks: int = 0,
    crank: int | None = None,
    crank_ticks: int = 0,
) -> Decoded:
    """A decoded measurement from raw counter and tick values, built by hand."""
    flags = (wheel is not None) | (crank is not None) << 1
    payload = bytes([flags])
    if wheel is not None:
        payload += wheel.to_bytes(4, "little") + wheel_ticks.to_bytes(2, "little")
    if crank is not None:
        payload += crank.to_bytes(2, "little") + crank_ticks.to_bytes(2, "little")
    return decode_csc_measurement(payload)


@pytest.mark.parametrize("flags", FLAG_SETS)
def test_every_flag_combination_decodes_its_fields(flags):
    payload, fields = build(*flags)
    decoded = decode_csc_measurement(payload)
    assert decoded.uuid == 0x2A5B
    assert decoded.fields == fields
    assert decoded.at is None


@pytest.mark.parametrize("flags", FLAG_SETS)
def test_truncated_or_oversized_payload_names_expected_and_actual_length(flags):
    payload, _ = build(*flags)
    n = len(payload)
    if n > 1:
        with pytest.raises(DecodeError, match=f"need {n} bytes, got {n - 1}"):
            decode_csc_measurement(payload[:-1])
    with pytest.raises(DecodeError, match=f"need {n} bytes, got {n + 1}"):
        decode_csc_measurement(payload + b"\x00")


def test_speed_and_distance_from_two_measurements():
    motion = csc_motion(measurement(10, 1024), measurement(15, 3072), wheel_circumference_m=2.1)
    assert motion.distance_m == pytest.approx(10.5)
    assert motion.speed_m_s == pytest.approx(5.25)
    assert motion.cadence_rpm is None


def test_event_time_rollover_counts_forward():
    motion = csc_motion(measurement(100, 65024), measurement(102, 512), wheel_circumference_m=2.0)
    assert motion.speed_m_s == pytest.approx(4.0)  # 4 m in 1024 ticks = 1 s


def test_wheel_counter_rollover_counts_forward():
    motion = csc_motion(
        measurement(0xFFFF_FFFE, 0), measurement(3, 2048), wheel_circumference_m=2.0
    )
    assert motion.distance_m == pytest.approx(10.0)
    assert motion.speed_m_s == pytest.approx(5.0)


def test_crank_counter_and_time_rollover_give_cadence():
    motion = csc_motion(
        measurement(crank=0xFFFF, crank_ticks=64512),
        measurement(crank=1, crank_ticks=512),
        wheel_circumference_m=2.0,
    )
    assert motion.cadence_rpm == pytest.approx(80.0)  # 2 revolutions in 1.5 s
    assert motion.speed_m_s is None
    assert motion.distance_m is None


def test_no_new_wheel_event_means_standing_still():
    motion = csc_motion(measurement(7, 900), measurement(7, 900), wheel_circumference_m=2.0)
    assert (motion.speed_m_s, motion.distance_m) == (0.0, 0.0)


def test_new_revolutions_without_time_passing_give_no_speed():
    motion = csc_motion(measurement(7, 900), measurement(9, 900), wheel_circumference_m=2.0)
    assert motion.speed_m_s is None
    assert motion.distance_m == pytest.approx(4.0)


def test_motion_needs_two_csc_measurements_and_a_real_wheel():
    csc = measurement(1, 1)
    with pytest.raises(DecodeError, match="current is battery_level"):
        csc_motion(csc, decode_battery_level(b"\x10"), wheel_circumference_m=2.0)
    with pytest.raises(DecodeError, match="circumference"):
        csc_motion(csc, csc, wheel_circumference_m=0.0)


# Shared CI cores are slow at times; a deadline would make these flaky, not stricter.
@settings(deadline=None)
@given(
    start_revs=st.integers(0, 2**32 - 1),
    start_ticks=st.integers(0, 65535),
    revs=st.integers(0, 5000),
    ticks=st.integers(1, 65535),
    circumference=st.floats(0.5, 3.0),
)
def test_motion_is_right_across_any_rollover(start_revs, start_ticks, revs, ticks, circumference):
    previous = decode_csc_measurement(
        encode_csc_measurement(wheel_revolutions=start_revs, wheel_event_time_s=start_ticks / 1024)
    )
    current = decode_csc_measurement(
        encode_csc_measurement(
            wheel_revolutions=start_revs + revs,
            wheel_event_time_s=(start_ticks + ticks) / 1024,
        )
    )
    motion = csc_motion(previous, current, wheel_circumference_m=circumference)
    assert motion.distance_m == pytest.approx(revs * circumference)
    assert motion.speed_m_s == pytest.approx(revs * circumference * 1024 / ticks)


# Shared CI cores are slow at times; a deadline would make these flaky, not stricter.
@settings(deadline=None)
@given(
    wheel=st.none() | st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 65535)),
    crank=st.none() | st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
)
def test_encoder_output_decodes_to_the_same_values(wheel, crank):
    kwargs: dict[str, Any] = {}
    if wheel is not None:
        kwargs.update(wheel_revolutions=wheel[0], wheel_event_time_s=wheel[1] / 1024)
    if crank is not None:
        kwargs.update(crank_revolutions=crank[0], crank_event_time_s=crank[1] / 1024)
    assert decode_csc_measurement(encode_csc_measurement(**kwargs)).fields == kwargs
