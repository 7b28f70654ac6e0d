"""Line protocol against the real influxd 1.6.7: what we write is exactly what a query returns.

Hypothesis writes hostile names, tags and values; every point the encoder accepts must read back
identical (InfluxQL, epoch=ns, field types from SHOW FIELD KEYS), and every point it refuses
carries a reason.
"""

from __future__ import annotations

import itertools
import json
import urllib.parse
import urllib.request
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.errors import PointsRejected
from cloud.store.base import FieldValue, Point
from cloud.store.influx_v1 import InfluxV1Store
from cloud.store.influxql import quote_ident
from cloud.store.lineprotocol import MAX_TIME_NS, MIN_TIME_NS, encode_points, line_problems
from tests.services import InfluxServer

pytestmark = pytest.mark.integration

# Characters that break line protocol parsers, and Japanese text: drawn often.
_NASTY = st.sampled_from([",", "=", " ", '"', "'", "日本語", "つくば", "\u3000", "😀", "\r"])
# What some places cannot carry (backslashes, newlines, NUL, a leading '#' or tab): less often.
_RISKY = st.sampled_from(["\\", "\n", "\t", "#", "\x00"])
_SAFE_CHAR = st.characters(exclude_categories=["Cs"], exclude_characters="\\\n\t#\x00")
_SAFE_TEXT = st.lists(st.one_of(_NASTY, _SAFE_CHAR), min_size=1, max_size=12).map("".join)
_RISKY_TEXT = st.lists(st.one_of(_NASTY, _SAFE_CHAR, _RISKY), min_size=1, max_size=12).map("".join)
_FIELD = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
    _SAFE_TEXT,
    # What cannot be stored, less often.
    st.sampled_from([2**63, -(2**63) - 1, 2**64, float("nan"), float("inf"), float("-inf")]),
)
_TIME = st.integers(min_value=MIN_TIME_NS - 2, max_value=MAX_TIME_NS + 2)


@st.composite
def _points(draw: st.DrawFn) -> list[Point]:
    points = []
    for i in range(draw(st.integers(min_value=1, max_value=4))):
        # About one point in four may hold what some place cannot carry.
        text = _RISKY_TEXT if draw(st.integers(min_value=0, max_value=3)) == 0 else _SAFE_TEXT
        tags = draw(st.dictionaries(text, text, max_size=3))
        fields = draw(st.dictionaries(text, _FIELD, min_size=1, max_size=4))
        # A field and a tag of one name come back as two columns named alike: keep them apart.
        fields = {k: v for k, v in fields.items() if k not in tags} or {"v": i}
        # One measurement per point: a fresh database per example has no field type history.
        points.append(Point(draw(text) + str(i), tags, fields, draw(_TIME)))
    return points


def _query(server: InfluxServer, db: str, q: str) -> list[dict[str, Any]]:
    form = urllib.parse.urlencode({"q": q, "db": db, "epoch": "ns"}).encode()
    with urllib.request.urlopen(f"{server.url}/query", data=form, timeout=30) as resp:
        result = json.loads(resp.read())
    (statement,) = result["results"]
    assert "error" not in statement, statement
    series: list[dict[str, Any]] = statement.get("series", [])
    return series


def _stored(
    server: InfluxServer, db: str, measurement: str
) -> list[tuple[int, dict[str, str], dict[str, Any]]]:
    """Every stored point of ``measurement``, asked for by name: (time, tags, typed fields)."""
    name = quote_ident(measurement)
    types = {
        k: t for s in _query(server, db, f"SHOW FIELD KEYS FROM {name}") for k, t in s["values"]
    }
    stored = []
    for s in _query(server, db, f"SELECT * FROM {name}"):
        assert s["name"] == measurement
        for row in s["values"]:
            record = dict(zip(s["columns"], row, strict=True))
            time_ns = record.pop("time")
            fields = {}
            tags = {}
            for column, value in record.items():
                if value is None:
                    continue
                if column in types:
                    fields[column] = float(value) if types[column] == "float" else value
                else:
                    tags[column] = value
            stored.append((time_ns, tags, fields))
    return stored


def _same(a: FieldValue, b: Any) -> bool:
    return type(a) is type(b) and a == b


_databases = itertools.count()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(points=_points())
def test_accepted_points_read_back_exactly_and_refused_ones_say_why(
    influxdb: InfluxServer, points: list[Point]
) -> None:
    db = f"rt{next(_databases)}"
    influxdb.query(f'CREATE DATABASE "{db}"')
    store = InfluxV1Store(influxdb.url, database=db)
    try:
        accepted = [p for p in points if not line_problems(p)]
        refused = [p for p in points if line_problems(p)]
        if refused:
            with pytest.raises(PointsRejected) as caught:
                encode_points(points)
            assert len(caught.value.reasons) >= len(refused)
        store.write(accepted)
        measurements = {
            name for s in _query(influxdb, db, "SHOW MEASUREMENTS") for (name,) in s["values"]
        }
        assert measurements == {p.measurement for p in accepted}
        for p in accepted:
            ((time_ns, tags, fields),) = _stored(influxdb, db, p.measurement)
            assert time_ns == p.time_ns
            assert tags == dict(p.tags)
            assert fields.keys() == p.fields.keys()
            for key, value in p.fields.items():
                assert _same(value, fields[key]), (key, value, fields[key])
        # SHOW SERIES, read back, names each series as written (the collector's budgets).
        listed = {(m, tuple(sorted(tags.items()))) for m, tags in store.node_series()}
        assert listed == {(p.measurement, tuple(sorted(p.tags.items()))) for p in accepted}
    finally:
        influxdb.query(f'DROP DATABASE "{db}"')
        store.close()


def test_tag_value_ending_in_backslash_is_refused_because_influxd_corrupts_it(
    influxdb: InfluxServer,
) -> None:
    influxdb.query("CREATE DATABASE probe")
    # Written plainly, influxd 1.6.7 reads the separator after the backslash as escaped.
    with pytest.raises(Exception, match="invalid tag format"):
        influxdb.write("probe", "m,k=x\\ v=1 1")
    # influxdb-client's workaround (append a space) is accepted but stores "x " instead of "x\".
    influxdb.write("probe", "m,k=x\\  v=1 2")
    (series,) = _query(influxdb, "probe", "SELECT * FROM m")
    assert series["values"] == [[2, "x ", 1.0]] or series["values"] == [[2, "x ", 1]]
    # So our store refuses it, naming the reason, and writes nothing of the batch.
    store = InfluxV1Store(influxdb.url, database="probe")
    with pytest.raises(PointsRejected, match="ends in a backslash"):
        store.write([Point("m", {"k": "ok"}, {"v": 1}, 3), Point("m", {"k": "x\\"}, {"v": 1}, 4)])
    assert store.count("m", by=None) == {"": 1}
    store.close()


def test_backslashes_quotes_and_japanese_in_tag_values_round_trip(influxdb: InfluxServer) -> None:
    values = ["a\\b", "a\\,b", "a\\ b", "a\\=b", "\\\\x", '"quoted"', "'single'", "東京 都,区=1"]
    store = InfluxV1Store(influxdb.url, database="tags")
    store.write([Point("m", {"k": v}, {"s": v + "\\"}, i) for i, v in enumerate(values)])
    rows = {tags["k"]: fields["s"] for _, tags, fields in _stored(influxdb, "tags", "m")}
    assert rows == {v: v + "\\" for v in values}
    assert sorted(tags["k"] for _, tags in store.node_series()) == sorted(values)
    store.close()
