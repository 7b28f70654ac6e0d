"""Daily link rollups: a month read from rollups is the month read from raw points, on SQLite
and on the real influxd; days are rolled up once they have ended, once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.fleet import Fleet
from cloud.rollup import DAY, DONE, RollupJob, done_days, summaries
from cloud.store import ReadableStore
from cloud.store.base import Point
from cloud.store.influx_v1 import InfluxV1Store
from cloud.store.read import to_ns
from cloud.store.sqlite import SqliteStore
from cloud.web.views.completeness import completeness_month
from tests.services import InfluxServer

ZONE = ZoneInfo("Asia/Tokyo")
FLEET = Fleet.model_validate(
    {
        "trials": [{"id": "t", "name": "T"}],
        "sites": [{"id": "s", "name": "S", "trial": "t"}],
        "nodes": [
            {"id": "rr-01", "kind": "restroom", "trial": "t", "site": "s"},
            {"id": "rr-02", "kind": "restroom", "trial": "t", "site": "s"},
        ],
    }
)
#: The clock of these tests: 2026-12-10 12:00 JST; the days of December before it have ended.
NOW = datetime(2026, 12, 10, 3, 0, tzinfo=UTC)
START = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # 2026-12-01 00:00 JST


def _link(node: str, stream: str, seq: int, minutes: float, readings: int = 2) -> Point:
    at = START + timedelta(minutes=minutes)
    return Point(
        "link",
        {"node": node, "stream": stream},
        {"seq": seq, "readings": readings},
        to_ns(at) + seq % 1000,
    )


def _fixed_points() -> list[Point]:
    points = []
    # rr-01: seqs 1..400 every 30 min over ~8 days; 50-52 and 300 lost; 120 sent again 3 days
    # later (a resend counts once); a new stream after day 8.
    for seq in range(1, 401):
        if seq in (50, 51, 52, 300):
            continue
        points.append(_link("rr-01", "s-one00000", seq, seq * 30.0))
    points.append(_link("rr-01", "s-one00000", 120, 120 * 30.0 + 3 * 24 * 60))
    for seq in range(1, 20):
        points.append(_link("rr-01", "s-two00000", seq, 8.5 * 24 * 60 + seq * 20.0))
    # rr-02: a gap across midnight JST.
    for seq in (1, 2, 3, 9, 10):
        points.append(_link("rr-02", "s-aaa00000", seq, 23.5 * 60 + (seq if seq < 4 else 60 + seq)))
    return points


MonthView = tuple[
    str,
    list[tuple[date, int, int]],
    list[tuple[str, int, int, datetime, datetime]],
    list[tuple[str, str, datetime, int]],
]


def _month(store: ReadableStore) -> list[MonthView]:
    rows = completeness_month(store, FLEET, month=date(2026, 12, 1), zone=ZONE)
    return [
        (
            r.node,
            [(d.day, d.received, d.missing) for d in r.days],
            [(g.stream, g.first, g.last, g.after, g.before) for g in r.gaps],
            [(x.stream, x.previous, x.at, x.first_seq) for x in r.resets],
        )
        for r in rows
    ]


def _job(store: ReadableStore) -> RollupJob:
    return RollupJob(store, store.write, ZONE, clock=lambda: NOW)


@pytest.fixture(params=["sqlite", "influx_v1"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ReadableStore:
    if request.param == "sqlite":
        return SqliteStore(tmp_path / "store.sqlite")
    influx: InfluxServer = request.getfixturevalue("influxdb")
    return InfluxV1Store(influx.url, database="rollups")


def test_a_month_from_rollups_is_the_month_from_raw_points(store: ReadableStore) -> None:
    store.write(_fixed_points())
    raw = _month(store)
    assert _job(store).run() == 9  # 2026-12-01 to 12-09; the 10th has not ended
    assert done_days(store, START, NOW + timedelta(days=1), ZONE) == {
        date(2026, 12, d) for d in range(1, 10)
    }
    assert _month(store) == raw
    rr01 = next(r for r in raw if r[0] == "rr-01")
    assert [(g[1], g[2]) for g in rr01[2]] == [(50, 52), (300, 300)]
    assert sum(received for _d, received, _m in rr01[1]) == 396 + 19  # the resend counted once
    assert [x[:2] for x in rr01[3]] == [("s-two00000", "s-one00000")]
    rr02 = next(r for r in raw if r[0] == "rr-02")
    assert [(g[1], g[2]) for g in rr02[2]] == [(4, 8)]  # across midnight, on the day before


def test_a_day_is_rolled_up_once_and_not_before_it_ended(store: ReadableStore) -> None:
    store.write(_fixed_points())
    job = _job(store)
    assert job.run() == 9
    assert job.run() == 0
    today = NOW.astimezone(ZONE).date()
    assert today not in done_days(store, START, NOW + timedelta(days=1), ZONE)
    # A day rolled up is read from its rollup: change the raw points under it and it stays.
    store.write([_link("rr-02", "s-aaa00000", 5, 23.5 * 60 + 5)])
    parts = summaries(store, START, START + timedelta(days=2), ZONE, node="rr-02")
    assert all(5 not in range(lo, hi + 1) for p in parts for lo, hi in p.seqs)
    rows = store.points(DAY, since=START, until=NOW, limit=1000)
    assert {r.tags["node"] for r in rows} == {"rr-01", "rr-02"}
    assert store.points(DONE, since=START, until=NOW, limit=100)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    seqs=st.lists(st.integers(1, 200), min_size=1, max_size=120),
    resends=st.lists(st.tuples(st.integers(1, 200), st.floats(0, 6 * 24 * 60)), max_size=10),
    spacing=st.floats(5, 120),
)
def test_rollups_and_raw_agree_for_any_deliveries(
    tmp_path_factory: pytest.TempPathFactory,
    seqs: list[int],
    resends: list[tuple[int, float]],
    spacing: float,
) -> None:
    store = SqliteStore(tmp_path_factory.mktemp("p") / "store.sqlite")
    points = [_link("rr-01", "s-one00000", s, s * spacing) for s in sorted(set(seqs))]
    points += [_link("rr-01", "s-one00000", s, m) for s, m in resends]
    store.write(points)
    raw = _month(store)
    _job(store).run()
    assert _month(store) == raw
    store.close()
