"""The read side: SqliteStore and InfluxV1Store (real influxd) give the same answers."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.store import ReadableStore
from cloud.store.base import Point
from cloud.store.influx_v1 import InfluxV1Store
from cloud.store.read import AGGREGATE_FNS, AggregateFn, Bucket, to_ns
from cloud.store.sqlite import SqliteStore
from tests.services import InfluxServer

T0 = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
S = 1_000_000_000


def _at(seconds: float) -> int:
    return to_ns(T0) + int(seconds * S)


POINTS = [
    Point("visit", {"node": "rr-01", "stall": "1"}, {"duration_s": 10.0, "n": 1}, _at(1)),
    Point("visit", {"node": "rr-01", "stall": "2"}, {"duration_s": 20.0, "n": 2}, _at(5)),
    Point("visit", {"node": "rr-01", "stall": "1"}, {"duration_s": 40.0, "n": 4}, _at(12)),
    Point("visit", {"node": "rr-02", "stall": "1"}, {"duration_s": 5.5, "n": 7}, _at(3)),
    Point("visit", {"stall": "9"}, {"duration_s": 1.0, "n": 1}, _at(4)),
    Point("link", {"node": "rr-01", "stream": "s-aaaaaaaa"}, {"seq": 1, "readings": 2}, _at(1)),
    Point("link", {"node": "rr-01", "stream": "s-aaaaaaaa"}, {"seq": 2, "readings": 1}, _at(2)),
    # A resend of seq 2 is another delivery (another point), the same seq.
    Point("link", {"node": "rr-01", "stream": "s-aaaaaaaa"}, {"seq": 2, "readings": 1}, _at(8)),
    Point("link", {"node": "rr-01", "stream": "s-aaaaaaaa"}, {"seq": 4, "readings": 1}, _at(9)),
    Point("link", {"node": "rr-01", "stream": "s-bbbbbbbb"}, {"seq": 1, "readings": 1}, _at(20)),
    Point("link", {"node": "it's \\x", "stream": "s-cccccccc"}, {"seq": 7, "readings": 1}, _at(3)),
]


def _open(kind: str, tmp_path: Path, influx: InfluxServer | None) -> ReadableStore:
    if kind == "sqlite":
        return SqliteStore(tmp_path / "store.sqlite")
    assert influx is not None
    return InfluxV1Store(influx.url, database="city")


@pytest.fixture(params=["sqlite", "influx_v1"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadableStore]:
    influx = request.getfixturevalue("influxdb") if request.param == "influx_v1" else None
    opened = _open(request.param, tmp_path, influx)
    opened.write(POINTS)
    yield opened
    opened.close()


def test_latest_is_the_newest_point_of_each_node(store: ReadableStore) -> None:
    rows = store.latest("visit")
    assert [(r.key, r.time_ns, dict(r.tags), dict(r.fields)) for r in rows] == [
        ("", _at(4), {"stall": "9"}, {"duration_s": 1.0, "n": 1}),
        ("rr-01", _at(12), {"node": "rr-01", "stall": "1"}, {"duration_s": 40.0, "n": 4}),
        ("rr-02", _at(3), {"node": "rr-02", "stall": "1"}, {"duration_s": 5.5, "n": 7}),
    ]
    assert rows[1].at == T0 + timedelta(seconds=12)


def test_latest_since_leaves_out_older_points(store: ReadableStore) -> None:
    rows = store.latest("visit", by="stall", since=T0 + timedelta(seconds=4))
    assert [(r.key, r.time_ns) for r in rows] == [("1", _at(12)), ("2", _at(5)), ("9", _at(4))]


def test_aggregates_fall_in_epoch_aligned_buckets_per_node(store: ReadableStore) -> None:
    buckets = store.aggregate(
        "visit",
        "duration_s",
        fn="mean",
        every=timedelta(seconds=10),
        by="node",
        since=T0,
        until=T0 + timedelta(minutes=1),
    )
    assert buckets == [
        Bucket(_at(0), "", 1.0),
        Bucket(_at(0), "rr-01", 15.0),
        Bucket(_at(0), "rr-02", 5.5),
        Bucket(_at(10), "rr-01", 40.0),
    ]
    assert [b.value for b in buckets] == [1.0, 15.0, 5.5, 40.0]


@pytest.mark.parametrize(
    ("fn", "values"),
    [("sum", [11, 4]), ("max", [7, 4]), ("min", [1, 4]), ("count", [4, 1])],
)
def test_aggregates_over_the_whole_fleet(
    store: ReadableStore, fn: AggregateFn, values: list[int]
) -> None:
    buckets = store.aggregate(
        "visit",
        "n",
        fn=fn,
        every=timedelta(seconds=10),
        by=None,
        since=T0,
        until=T0 + timedelta(minutes=1),
    )
    assert [(b.start_ns, b.group) for b in buckets] == [(_at(0), ""), (_at(10), "")]
    assert [b.value for b in buckets] == values
    assert all(type(b.value) is int for b in buckets)


def test_aggregates_only_of_points_whose_tags_match(store: ReadableStore) -> None:
    buckets = store.aggregate(
        "visit",
        "duration_s",
        fn="sum",
        every=timedelta(seconds=60),
        by="node",
        since=T0,
        until=T0 + timedelta(seconds=60),
        where={"stall": "1"},
    )
    assert [(b.group, b.value) for b in buckets] == [("rr-01", 50.0), ("rr-02", 5.5)]
    none = store.aggregate(
        "visit",
        "n",
        fn="count",
        every=timedelta(seconds=60),
        by=None,
        since=T0,
        until=T0 + timedelta(seconds=60),
        where={"stall": "it's \\"},
    )
    assert none == []


def test_aggregate_buckets_move_by_the_offset(store: ReadableStore) -> None:
    buckets = store.aggregate(
        "visit",
        "n",
        fn="sum",
        every=timedelta(seconds=10),
        by=None,
        since=T0,
        until=T0 + timedelta(seconds=60),
        offset=timedelta(seconds=-7),
    )
    # Buckets [T0-7 s, T0+3 s): the point at 1 s; [T0+3, T0+13): those at 3, 4, 5 and 12 s.
    assert [(b.start_ns, b.value) for b in buckets] == [(_at(-7), 1), (_at(3), 7 + 1 + 2 + 4)]


def test_the_range_is_half_open(store: ReadableStore) -> None:
    buckets = store.aggregate(
        "visit",
        "duration_s",
        fn="max",
        every=timedelta(seconds=10),
        by=None,
        since=T0 + timedelta(seconds=3),
        until=T0 + timedelta(seconds=12),
    )
    assert buckets == [Bucket(_at(0), "", 20.0)]
    assert type(buckets[0].value) is float


def test_counts_per_node_and_in_total(store: ReadableStore) -> None:
    assert store.count("visit", by="node") == {"": 1, "rr-01": 3, "rr-02": 1}
    assert store.count("visit", by=None) == {"": 5}
    assert store.count("visit", by=None, since=T0 + timedelta(seconds=4)) == {"": 3}
    assert store.count("visit", by="node", until=T0 + timedelta(seconds=4)) == {
        "rr-01": 1,
        "rr-02": 1,
    }
    assert store.count("nothing", by="node") == {}


def test_last_values_are_the_newest_of_each_field_even_behind_points_without_it(
    store: ReadableStore,
) -> None:
    store.write(
        [
            Point("fleet_state", {"node": "rr-01"}, {"software": "1.0", "online": True}, _at(1)),
            Point("fleet_state", {"node": "rr-01"}, {"software": "1.1"}, _at(5)),
            # A later point without "software" (a node seen in data) does not hide 1.1.
            Point("fleet_state", {"node": "rr-01"}, {"stream": "s-aaaaaaaa"}, _at(9)),
            Point("fleet_state", {"node": "rr-02"}, {"online": False}, _at(7)),
        ]
    )
    found = store.last_values("fleet_state", ("software", "online", "absent"))
    assert {k: {f: (v.time_ns, v.value) for f, v in d.items()} for k, d in found.items()} == {
        "rr-01": {"software": (_at(5), "1.1"), "online": (_at(1), True)},
        "rr-02": {"online": (_at(7), False)},
    }
    later = store.last_values("fleet_state", ("software",), since=T0 + timedelta(seconds=6))
    assert later == {}


def test_link_log_gives_each_seq_its_first_delivery_time(store: ReadableStore) -> None:
    log = store.link_log(since=T0, until=T0 + timedelta(seconds=30))
    assert log[("rr-01", "s-aaaaaaaa")] == {1: (_at(1), 2), 2: (_at(2), 1), 4: (_at(9), 1)}
    assert log[("rr-01", "s-bbbbbbbb")] == {1: (_at(20), 1)}
    only = store.link_log(
        since=T0 + timedelta(seconds=5), until=T0 + timedelta(seconds=30), node="rr-01"
    )
    assert only == {
        ("rr-01", "s-aaaaaaaa"): {2: (_at(8), 1), 4: (_at(9), 1)},
        ("rr-01", "s-bbbbbbbb"): {1: (_at(20), 1)},
    }


def test_points_are_the_newest_of_a_node_in_the_range(store: ReadableStore) -> None:
    rows = store.points("visit", since=T0, until=T0 + timedelta(seconds=30), node="rr-01", limit=2)
    assert [(r.key, r.time_ns, dict(r.tags), dict(r.fields)) for r in rows] == [
        ("rr-01", _at(12), {"node": "rr-01", "stall": "1"}, {"duration_s": 40.0, "n": 4}),
        ("rr-01", _at(5), {"node": "rr-01", "stall": "2"}, {"duration_s": 20.0, "n": 2}),
    ]


def test_link_seqs_are_the_distinct_seqs_per_node_and_stream(store: ReadableStore) -> None:
    assert store.link_seqs() == {
        ("rr-01", "s-aaaaaaaa"): {1, 2, 4},
        ("rr-01", "s-bbbbbbbb"): {1},
        ("it's \\x", "s-cccccccc"): {7},
    }
    assert store.link_seqs(node="it's \\x") == {("it's \\x", "s-cccccccc"): {7}}
    assert store.link_seqs(since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=9)) == {
        ("rr-01", "s-aaaaaaaa"): {2},
        ("it's \\x", "s-cccccccc"): {7},
    }


@pytest.mark.integration
def test_sqlite_and_influxdb_answer_alike_for_the_same_random_points(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    rng = random.Random(7)
    points = []
    for i in range(600):
        node = f"rr-{rng.randrange(6):02d}"
        stall = str(rng.randrange(3))
        fields: dict[str, float | int] = {"d": round(rng.uniform(0, 300), 3), "n": rng.randrange(9)}
        points.append(Point("visit", {"node": node, "stall": stall}, fields, _at(i * 1.7)))
        points.append(
            Point(
                "link",
                {"node": node, "stream": f"s-{node}"},
                {"seq": rng.randrange(1, 200), "readings": 1},
                _at(i * 1.7),
            )
        )
    sqlite = _open("sqlite", tmp_path, None)
    influx = _open("influx_v1", tmp_path, influxdb)
    for s in (sqlite, influx):
        s.write(points)
    since, until = T0 + timedelta(seconds=100), T0 + timedelta(seconds=900)
    for by in ("node", "stall", None):
        assert sqlite.count("visit", by=by) == influx.count("visit", by=by)
        assert sqlite.count("visit", by=by, since=since, until=until) == influx.count(
            "visit", by=by, since=since, until=until
        )
        for fn in AGGREGATE_FNS:
            for field in ("d", "n"):
                a = sqlite.aggregate(
                    "visit",
                    field,
                    fn=fn,
                    every=timedelta(seconds=60),
                    by=by,
                    since=since,
                    until=until,
                )
                b = influx.aggregate(
                    "visit",
                    field,
                    fn=fn,
                    every=timedelta(seconds=60),
                    by=by,
                    since=since,
                    until=until,
                )
                assert [(x.start_ns, x.group) for x in a] == [(x.start_ns, x.group) for x in b]
                assert [x.value for x in a] == pytest.approx([x.value for x in b], rel=1e-12)
    for by in ("node", "stall"):
        assert sqlite.latest("visit", by=by) == influx.latest("visit", by=by)
    assert sqlite.link_seqs() == influx.link_seqs()
    assert sqlite.link_seqs(since=since, until=until, node="rr-03") == influx.link_seqs(
        since=since, until=until, node="rr-03"
    )
    sqlite.close()
    influx.close()
