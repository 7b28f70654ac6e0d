"""The line protocol encoder on its own: escaping, and what it refuses with a reason."""

from __future__ import annotations

import pytest

from cloud.errors import PointsRejected
from cloud.store.base import Point
from cloud.store.lineprotocol import (
    MAX_TIME_NS,
    chunks,
    encode_point,
    encode_points,
    line_problems,
)

T = 1_764_140_400_000_000_000


def test_metacharacters_in_names_and_tags_are_escaped() -> None:
    point = Point("rest room,1", {"stall id": "a=b,c", "会場": "つくば 駅"}, {"n=1": 1}, T)
    assert encode_point(point) == (
        f"rest\\ room\\,1,stall\\ id=a\\=b\\,c,会場=つくば\\ 駅 n\\=1=1i {T}"
    )


def test_string_fields_escape_quotes_and_backslashes_and_keep_newlines() -> None:
    point = Point("note", {}, {"text": 'say "hi"\\\nbye'}, T)
    assert encode_point(point) == f'note text="say \\"hi\\"\\\\\nbye" {T}'


def test_field_types_are_written_as_influxdb_reads_them() -> None:
    point = Point("m", {}, {"b": False, "f": 0.1, "g": 1e-07, "i": -(2**63), "w": 3.0}, T)
    assert encode_point(point) == f"m b=false,f=0.1,g=1e-07,i=-9223372036854775808i,w=3.0 {T}"


def test_tags_are_sorted_by_key() -> None:
    point = Point("m", {"site": "s", "node": "n", "trial": "t"}, {"v": 1}, T)
    assert encode_point(point).startswith("m,node=n,site=s,trial=t ")


@pytest.mark.parametrize(
    ("point", "reason"),
    [
        (Point("m", {"k": "ends\\"}, {"v": 1}, T), "ends in a backslash"),
        (Point("m\\", {}, {"v": 1}, T), "ends in a backslash"),
        (Point("m", {}, {"v": float("nan")}, T), "not a finite number"),
        (Point("m", {}, {"v": float("inf")}, T), "not a finite number"),
        (Point("m", {}, {"v": 2**63}, T), "does not fit in int64"),
        (Point("m", {}, {"v": -(2**63) - 1}, T), "does not fit in int64"),
        (Point("m", {"k": "a\nb"}, {"v": 1}, T), "control character U+000A"),
        (Point("m\r", {}, {"v": 1}, T), "control character U+000D"),
        (Point("m", {}, {"\tv": 1}, T), "control character U+0009"),
        (Point("#m", {}, {"v": 1}, T), "comment"),
        (Point("m", {"time": "x"}, {"v": 1}, T), "'time' is reserved"),
        (Point("m", {}, {"time": 1}, T), "'time' is reserved"),
        (Point("m", {"k": ""}, {"v": 1}, T), "empty"),
        (Point("m", {}, {}, T), "no fields"),
        (Point("m", {}, {"v": 1}, MAX_TIME_NS + 1), "outside what InfluxDB stores"),
        (Point("m", {"a\\b": "x"}, {"v": 1}, T), "backslash"),
    ],
)
def test_unstorable_points_are_refused_with_a_reason(point: Point, reason: str) -> None:
    with pytest.raises(PointsRejected) as caught:
        encode_points([Point("ok", {}, {"v": 1}, T), point])
    assert len(caught.value.reasons) == 1
    assert reason in caught.value.reasons[0]


def test_every_reason_of_a_point_is_reported() -> None:
    problems = line_problems(Point("m", {"node": "x\\"}, {"a": float("nan"), "b": 2**64}, T))
    assert len(problems) == 3


def test_backslashes_inside_tag_values_are_kept_literally() -> None:
    # InfluxDB 1.x reads a backslash in a tag as literal unless an escaped ',', '=' or ' '
    # follows; escaping it as '\\\\' would store two backslashes.
    assert encode_point(Point("m", {"k": "a\\b\\ c"}, {"v": 1}, T)) == f"m,k=a\\b\\\\ c v=1i {T}"


def test_chunks_cut_between_points_never_inside_a_multiline_string() -> None:
    points = [Point("m", {"n": str(i)}, {"s": "line\n" * 20}, T + i) for i in range(50)]
    bodies = list(chunks(points, 1000))
    assert len(bodies) > 1
    assert b"".join(bodies) == encode_points(points)
    for body in bodies:
        assert body.startswith(b"m,n=")
        assert len(body) <= 1000
