"""IEEE 11073 SFLOAT and FLOAT, decoded from hand-built raw values and round-tripped."""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.errors import DecodeError
from hardware.gatt.errors import EncodeError
from hardware.gatt.ieee11073 import decode_float, decode_sfloat, encode_float, encode_sfloat


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"\x72\x00", 114.0),  # mantissa 114, exponent 0
        (b"\x6c\xf1", 36.4),  # mantissa 364, exponent -1
        (b"\xff\x0f", -1.0),  # mantissa -1, exponent 0
        (b"\x01\x10", 10.0),  # mantissa 1, exponent 1
        (b"\x00\x00", 0.0),
        (b"\x01\x80", 1e-8),  # smallest exponent, -8
        (b"\xfd\x77", 2045e7),  # largest ordinary mantissa and exponent
    ],
)
def test_sfloat_decodes_mantissa_times_power_of_ten(raw, value):
    assert decode_sfloat(raw) == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"\x6e\x01\x00\xff", 36.6),  # mantissa 366, exponent -1
        (b"\x4d\x95\xff\xfe", -273.15),  # mantissa -27315, exponent -2
        (b"\x01\x00\x00\x03", 1000.0),
        (b"\xfd\xff\x7f\x00", 8388605.0),
    ],
)
def test_float_decodes_mantissa_times_power_of_ten(raw, value):
    assert decode_float(raw) == value


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (0x07FF, "NaN"),
        (0x0800, "NRes"),
        (0x07FE, "+INFINITY"),
        (0x0802, "-INFINITY"),
        (0x0801, "reserved"),
    ],
)
def test_sfloat_special_value_is_an_error_naming_it(raw, name):
    with pytest.raises(DecodeError, match=re.escape(name)):
        decode_sfloat(raw.to_bytes(2, "little"))


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (0x007FFFFF, "NaN"),
        (0x00800000, "NRes"),
        (0x007FFFFE, "+INFINITY"),
        (0x00800002, "-INFINITY"),
        (0x00800001, "reserved"),
    ],
)
def test_float_special_value_is_an_error_naming_it(raw, name):
    with pytest.raises(DecodeError, match=re.escape(name)):
        decode_float(raw.to_bytes(4, "little"))


@pytest.mark.parametrize(
    ("value", "sfloat", "float32"),
    [
        (math.nan, 0x07FF, 0x007FFFFF),
        (math.inf, 0x07FE, 0x007FFFFE),
        (-math.inf, 0x0802, 0x00800002),
    ],
)
def test_non_finite_values_encode_as_the_special_values(value, sfloat, float32):
    assert encode_sfloat(value) == sfloat.to_bytes(2, "little")
    assert encode_float(value) == float32.to_bytes(4, "little")


def test_wrong_size_is_an_error_naming_both_sizes():
    with pytest.raises(DecodeError, match="needs 2 bytes, got 3"):
        decode_sfloat(b"\x00\x00\x00")
    with pytest.raises(DecodeError, match="needs 4 bytes, got 2"):
        decode_float(b"\x00\x00")


def test_encoder_keeps_the_decimals_it_is_given():
    assert encode_float(36.6) == b"\x6e\x01\x00\xff"
    assert encode_sfloat(36.63, decimals=1) == b"\x6e\xf1"
    assert encode_float(36.6, decimals=2) == (3660).to_bytes(3, "little") + b"\xfe"


def test_encoder_rounds_when_the_mantissa_has_too_few_bits():
    assert decode_sfloat(encode_sfloat(12345.0)) == 12340.0
    assert decode_sfloat(encode_sfloat(-98.7654)) == -98.8


def test_encoder_refuses_values_beyond_the_exponent_range():
    with pytest.raises(EncodeError, match="out of range"):
        encode_sfloat(1e12)
    with pytest.raises(EncodeError, match="out of range"):
        encode_float(1e140)


# Shared CI cores are slow at times; a deadline would make these flaky, not stricter.
@settings(deadline=None)
@given(st.integers(-2045, 2045), st.integers(-8, 7))
def test_sfloat_round_trips_every_exact_value(mantissa, exponent):
    value = float(Decimal(mantissa).scaleb(exponent))
    assert decode_sfloat(encode_sfloat(value)) == value


# Shared CI cores are slow at times; a deadline would make these flaky, not stricter.
@settings(deadline=None)
@given(st.integers(-8388605, 8388605), st.integers(-128, 127))
def test_float_round_trips_every_exact_value(mantissa, exponent):
    value = float(Decimal(mantissa).scaleb(exponent))
    assert decode_float(encode_float(value)) == value


# Shared CI cores are slow at times; a deadline would make these flaky, not stricter.
@settings(deadline=None)
@given(st.floats(-1000, 1000, allow_nan=False), st.integers(0, 2))
def test_float_round_trips_to_the_requested_decimals(value, decimals):
    assert decode_float(encode_float(value, decimals)) == pytest.approx(
        value, abs=0.5 * 10**-decimals + 1e-9
    )
