"""The GATT Date Time field shared by the measurement characteristics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hardware.errors import DecodeError
from hardware.gatt.date_time import decode_date_time, encode_date_time
from hardware.gatt.errors import EncodeError


def test_fields_are_year_month_day_hours_minutes_seconds():
    raw = b"\xe7\x07\x0c\x1f\x17\x3b\x3b"
    assert decode_date_time(raw) == datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x00\x0c\x1f\x17\x3b\x3b",  # year not known
        b"\xe7\x07\x00\x1f\x17\x3b\x3b",  # month not known
        b"\xe7\x07\x0c\x00\x17\x3b\x3b",  # day not known
    ],
)
def test_unknown_date_part_gives_no_timestamp(raw):
    assert decode_date_time(raw) is None


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\xe7\x07\x0d\x01\x00\x00\x00", "2023-13-01"),
        (b"\xe7\x07\x02\x1e\x00\x00\x00", "2023-02-30"),
        (b"\xe7\x07\x01\x01\x18\x00\x00", "24:00:00"),
        (b"\x2d\x06\x01\x01\x00\x00\x00", "year 1581"),
    ],
)
def test_impossible_date_is_an_error_showing_it(raw, problem):
    with pytest.raises(DecodeError, match=problem):
        decode_date_time(raw)


def test_zone_is_the_callers():
    nine = timezone(timedelta(hours=9))
    at = decode_date_time(b"\xea\x07\x05\x01\x09\x1e\x00", tz=nine)
    assert at == datetime(2026, 5, 1, 0, 30, tzinfo=UTC)


def test_encoder_writes_local_time_and_unknown():
    nine = timezone(timedelta(hours=9))
    assert encode_date_time(datetime(2026, 5, 1, 0, 30, tzinfo=UTC), tz=nine) == (
        b"\xea\x07\x05\x01\x09\x1e\x00"
    )
    assert encode_date_time(None) == bytes(7)
    with pytest.raises(EncodeError, match="no time zone"):
        encode_date_time(datetime(2026, 5, 1))
