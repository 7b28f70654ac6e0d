"""The line protocol's fast path writes what the full checks write, or leaves the point to them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.errors import PointsRejected
from cloud.store.base import Point
from cloud.store.lineprotocol import (
    MAX_TIME_NS,
    MIN_TIME_NS,
    _fast_line,
    _line,
    chunks,
    encode_points,
)

T = 1_764_140_400_000_000_000

# Mostly names and values any store takes, with the characters line protocol escapes or refuses.
_names = st.one_of(
    st.sampled_from(["m", "node", "会場", "a b", "a,b", "a=b", "#m", "time", "a\\b", "m\\", ""]),
    st.text(alphabet=st.sampled_from('ab ,="\\#\n\t\x7fつ'), max_size=6),
    st.text(max_size=4),
)
_values: Any = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),
    _names,
    st.none(),
)
_points = st.builds(
    Point,
    _names,
    st.dictionaries(_names, st.one_of(_names, st.integers()), max_size=3),
    st.dictionaries(_names, _values, max_size=3),
    st.one_of(
        st.integers(min_value=MIN_TIME_NS - 2, max_value=MAX_TIME_NS + 2),
        st.sampled_from([T, MIN_TIME_NS, MAX_TIME_NS, 1.5, True]),
    ),
)


@settings(max_examples=500, deadline=None)
@given(_points)
def test_fast_line_is_the_checked_line_or_nothing(point: Point) -> None:
    fast = _fast_line(point)
    if fast is not None:
        problems, line = _line(point)
        try:
            fast.encode("utf-8")
        except UnicodeEncodeError:
            assert problems  # the batch falls back to the full checks, which refuse it
        else:
            assert problems == []
            assert fast == line


def test_points_from_the_collector_take_the_fast_path() -> None:
    points = [
        Point("visit", {"node": "rr-01", "site": "つくば 駅", "stall": "a=1"}, {"d": 1.5}, T),
        Point("link", {"node": "rr-01", "stream": "s" * 32}, {"seq": 3, "ok": True}, T + 1),
        Point("note", {}, {"text": 'say "hi"\\\nbye'}, T),
    ]
    for point in points:
        assert _fast_line(point) == _line(point)[1]
    assert encode_points(points) == b"".join((_line(p)[1] + "\n").encode("utf-8") for p in points)


def test_a_bad_point_in_a_batch_is_named_with_every_reason() -> None:
    good = Point("m", {"node": "rr-01"}, {"v": 1}, T)
    bad = Point("m", {"k": "ends\\"}, {"v": float("nan")}, T)
    with pytest.raises(PointsRejected) as err:
        encode_points([good, bad, good])
    text = "\n".join(err.value.reasons)
    assert "ends in a backslash" in text
    assert "not a finite number" in text


def test_a_lone_surrogate_in_a_string_field_is_refused_not_sent() -> None:
    with pytest.raises(PointsRejected, match="lone surrogate"):
        encode_points([Point("m", {}, {"s": "a\ud800"}, T)])


def test_chunks_of_an_iterator_hold_every_line() -> None:
    points = [Point("m", {"n": str(i)}, {"v": i}, T + i) for i in range(50)]
    whole = encode_points(points)
    assert b"".join(chunks(iter(points), 200)) == whole
    assert b"".join(chunks(iter(points), 10**9)) == whole
