"""Daily rollups of what nodes delivered: per node, stream and day, which envelopes arrived.

Completeness over a month and readings per day read about a thousand rollup rows instead of a
quarter of a million ``link`` points. A :class:`DaySummary` says, for one stream on one day (in
the city's time zone): the seqs first delivered that day (as ranges), how many readings they
held, and the delivery times of the seqs at the edges of each run, which is all a gap's time
range needs. The same summaries come from raw ``link`` points (a day not rolled up yet, such as
today) or from the store's ``rollup_link_day`` points, so both read alike.

What is written (by the cloud, never accepted from a node):

- ``rollup_link_day``: tags ``node``, ``stream``; fields ``seqs`` (string, ``"1-250,252-288"``),
  ``received`` (int), ``readings`` (int), ``first_seq``, ``first_ns``, ``last_seq``,
  ``last_ns`` (ints), ``gaps`` (string, JSON ``[[lo, hi, after_ns, before_ns], ...]``: the gaps
  inside the day, with the delivery times around them); time: the day's start.
- ``rollup_done``: tag ``what`` = ``link_day``; field ``streams`` (int); time: the day's
  start. Written once a day has ended and its summaries are stored; a day without it is read
  raw.

A resend of an envelope arrives with a new ``sent_at`` and so lands on the day it was sent
again: a finished day's rollup never goes stale, and the union of a month's days counts each
seq once.

>>> from zoneinfo import ZoneInfo
>>> zone = ZoneInfo("Asia/Tokyo")
>>> t0 = 1_780_000_000 * 10**9
>>> log = {("rr-01", "s1"): {s: (t0 + s * 10**9, 2) for s in (1, 2, 5, 6)}}
>>> (day,) = summarize(log, zone)
>>> day.seqs, day.received, day.readings, [g[:2] for g in day.gaps]
([(1, 2), (5, 6)], 4, 8, [(3, 4)])
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import structlog

from cloud.store.base import Point
from cloud.store.read import LatestRow, ReadSide, from_ns, to_ns
from protocol.messages import to_ranges

log = structlog.get_logger(__name__)

DAY = "rollup_link_day"
DONE = "rollup_done"
DONE_WHAT = "link_day"

#: A gap inside a day: (first missing seq, last missing seq, after_ns, before_ns).
GapTuple = tuple[int, int, int, int]


@dataclass
class DaySummary:
    """What one stream of one node delivered on one day."""

    node: str
    stream: str
    day: date
    seqs: list[tuple[int, int]]
    received: int
    readings: int
    first_seq: int
    first_ns: int
    last_seq: int
    last_ns: int
    gaps: list[GapTuple] = field(default_factory=list)


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The UTC time a local day starts."""
    return datetime.combine(day, time(), zone).astimezone(UTC)


def local_day(time_ns: int, zone: ZoneInfo) -> date:
    return from_ns(time_ns).astimezone(zone).date()


def summarize(
    link_log: Mapping[tuple[str, str], Mapping[int, tuple[int, int]]], zone: ZoneInfo
) -> list[DaySummary]:
    """Summaries per (node, stream, local day) of a raw link log (seq -> first ns, readings)."""
    out: list[DaySummary] = []
    for (node, stream), seqs in sorted(link_log.items()):
        by_day: dict[date, dict[int, tuple[int, int]]] = defaultdict(dict)
        for seq, (time_ns, readings) in seqs.items():
            by_day[local_day(time_ns, zone)][seq] = (time_ns, readings)
        for day, held in sorted(by_day.items()):
            ordered = sorted(held)
            gaps = [
                (a + 1, b - 1, held[a][0], held[b][0])
                for a, b in itertools.pairwise(ordered)
                if b > a + 1
            ]
            out.append(
                DaySummary(
                    node=node,
                    stream=stream,
                    day=day,
                    seqs=to_ranges(ordered),
                    received=len(ordered),
                    readings=sum(r for _t, r in held.values()),
                    first_seq=ordered[0],
                    first_ns=held[ordered[0]][0],
                    last_seq=ordered[-1],
                    last_ns=held[ordered[-1]][0],
                    gaps=gaps,
                )
            )
    return out


def ranges_text(ranges: Sequence[tuple[int, int]]) -> str:
    """``"1-250,252"`` for [(1, 250), (252, 252)]."""
    return ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


def parse_ranges(text: str) -> list[tuple[int, int]]:
    """The inverse of :func:`ranges_text`.

    >>> parse_ranges(ranges_text([(1, 250), (252, 252)]))
    [(1, 250), (252, 252)]
    """
    out = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out.append((int(lo), int(hi or lo)))
    return out


def to_points(summaries: Iterable[DaySummary], zone: ZoneInfo) -> list[Point]:
    return [
        Point(
            DAY,
            {"node": s.node, "stream": s.stream},
            {
                "seqs": ranges_text(s.seqs),
                "received": s.received,
                "readings": s.readings,
                "first_seq": s.first_seq,
                "first_ns": s.first_ns,
                "last_seq": s.last_seq,
                "last_ns": s.last_ns,
                "gaps": json.dumps(s.gaps, separators=(",", ":")),
            },
            to_ns(day_start(s.day, zone)),
        )
        for s in summaries
    ]


def from_rows(rows: Iterable[LatestRow], zone: ZoneInfo) -> list[DaySummary]:
    """Summaries from stored ``rollup_link_day`` points."""
    out = []
    for r in rows:
        f = r.fields
        out.append(
            DaySummary(
                node=r.tags.get("node", ""),
                stream=r.tags.get("stream", ""),
                day=r.at.astimezone(zone).date(),
                seqs=parse_ranges(str(f.get("seqs", ""))),
                received=int(f.get("received", 0)),
                readings=int(f.get("readings", 0)),
                first_seq=int(f.get("first_seq", 0)),
                first_ns=int(f.get("first_ns", 0)),
                last_seq=int(f.get("last_seq", 0)),
                last_ns=int(f.get("last_ns", 0)),
                gaps=[
                    (int(a), int(b), int(c), int(d))
                    for a, b, c, d in json.loads(str(f.get("gaps", "[]")))
                ],
            )
        )
    return out


def done_days(store: ReadSide, start: datetime, end: datetime, zone: ZoneInfo) -> set[date]:
    """The days in [start, end) whose link rollup is complete."""
    rows = store.points(DONE, since=start, until=end, limit=10_000)
    return {r.at.astimezone(zone).date() for r in rows if r.tags.get("what") == DONE_WHAT}


def days_in(start: datetime, end: datetime, zone: ZoneInfo) -> list[date]:
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def summaries(
    store: ReadSide,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    *,
    node: str | None = None,
) -> list[DaySummary]:
    """Every stream's day summaries in [start, end): rolled-up days from the rollups, the
    others (today, days the job has not reached) from raw ``link`` points."""
    done = done_days(store, start, end, zone)
    out: list[DaySummary] = []
    if done:
        rows = store.points(DAY, since=start, until=end, node=node, limit=1_000_000)
        out += [s for s in from_rows(rows, zone) if s.day in done]
    # Raw for the runs of days that are not done, one query per run.
    run: list[date] = []
    for day in [*days_in(start, end, zone), None]:
        if day is not None and day not in done:
            run.append(day)
            continue
        if run:
            lo = max(start, day_start(run[0], zone))
            hi = min(end, day_start(run[-1] + timedelta(days=1), zone))
            out += summarize(store.link_log(since=lo, until=hi, node=node), zone)
            run = []
    return out


class RollupJob:
    """Makes the daily link rollups of every day that has ended and has none yet."""

    def __init__(
        self,
        store: ReadSide,
        write: Callable[[Sequence[Point]], None],
        zone: ZoneInfo,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.write = write
        self.zone = zone
        self.clock = clock

    def first_day(self) -> date | None:
        """The day of the oldest ``link`` point, or None for an empty store."""
        oldest = self.store.first_time("link")
        return None if oldest is None else oldest.astimezone(self.zone).date()

    def pending(self, since: date) -> list[date]:
        """Days from ``since`` to yesterday without a finished rollup."""
        today = self.clock().astimezone(self.zone).date()
        if since >= today:
            return []
        start, end = day_start(since, self.zone), day_start(today, self.zone)
        done = done_days(self.store, start, end, self.zone)
        return [d for d in days_in(start, end, self.zone) if d not in done]

    def roll(self, day: date) -> int:
        """Summarize ``day`` from raw points, store it, mark it done; how many streams."""
        start, end = day_start(day, self.zone), day_start(day + timedelta(days=1), self.zone)
        made = summarize(self.store.link_log(since=start, until=end), self.zone)
        points = to_points(made, self.zone)
        points.append(Point(DONE, {"what": DONE_WHAT}, {"streams": len(made)}, to_ns(start)))
        self.write(points)  # the marker goes with the summaries: all or nothing
        log.info("rollup_day_made", day=day.isoformat(), streams=len(made))
        return len(made)

    def run(
        self, since: date | None = None, *, progress: Callable[[str], None] | None = None
    ) -> int:
        """Roll up every pending day from ``since`` (default: the oldest data); how many."""
        start = since or self.first_day()
        if start is None:
            return 0
        days = self.pending(start)
        for i, day in enumerate(days):
            if progress is not None:
                progress(f"rollups: day {i + 1} of {len(days)} ({day.isoformat()})")
            self.roll(day)
        return len(days)
