"""Completeness per node and day: envelopes received against envelopes expected, the gaps with
their time ranges, and stream resets shown as such.

A node numbers its envelopes 1, 2, 3 ... within a stream, so every seq missing between two it
delivered is an envelope that has not arrived; it counts against the day (in the city's time
zone) of the envelope before it. A new stream (a new outbox) is a reset, not a gap: the old
stream's end and the new one's start are not compared. Seqs before the month's first one are
outside the range asked about and not counted. Days come from the daily rollups where they are
made (:mod:`cloud.rollup`), from raw ``link`` points otherwise.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cloud.fleet import Fleet
from cloud.rollup import DaySummary, summaries
from cloud.store.read import ReadSide, from_ns


@dataclass(frozen=True, slots=True)
class Gap:
    """Envelopes ``first``..``last`` of a stream never arrived; between ``after`` and
    ``before`` (the delivery times of the envelopes around them)."""

    node: str
    stream: str
    first: int
    last: int
    after: datetime
    before: datetime

    @property
    def count(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class Reset:
    """A node started a new stream (its outbox was made anew) at ``at``."""

    node: str
    stream: str
    previous: str
    at: datetime
    first_seq: int


@dataclass(slots=True)
class Day:
    day: date
    received: int = 0
    missing: int = 0

    @property
    def expected(self) -> int:
        return self.received + self.missing

    @property
    def ratio(self) -> float | None:
        """Received / expected, or None for a day with nothing expected."""
        return self.received / self.expected if self.expected else None


@dataclass(slots=True)
class NodeDays:
    """One node's month: a cell per day, its gaps and resets."""

    node: str
    kind: str
    trial: str
    site: str
    days: list[Day]
    gaps: list[Gap] = field(default_factory=list)
    resets: list[Reset] = field(default_factory=list)

    @property
    def received(self) -> int:
        return sum(d.received for d in self.days)

    @property
    def expected(self) -> int:
        return sum(d.expected for d in self.days)

    @property
    def ratio(self) -> float | None:
        return self.received / self.expected if self.expected else None


def month_range(month: date, zone: ZoneInfo) -> tuple[datetime, datetime, list[date]]:
    """The UTC start and end of a calendar month in ``zone``, and its days.

    >>> start, end, days = month_range(date(2026, 3, 1), ZoneInfo("Asia/Tokyo"))
    >>> start.isoformat(), end.isoformat(), len(days)
    ('2026-02-28T15:00:00+00:00', '2026-03-31T15:00:00+00:00', 31)
    """
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    start = datetime.combine(first, time(), zone).astimezone(UTC)
    end = datetime.combine(following, time(), zone).astimezone(UTC)
    return start, end, [first + timedelta(days=i) for i in range((following - first).days)]


class RangeSet:
    """Disjoint, sorted, inclusive ranges of seqs: a stream's month without a set of every seq.

    >>> r = RangeSet()
    >>> r.add([(1, 5), (9, 9)]), r.add([(4, 10)]), r.ranges
    (6, 4, [(1, 10)])
    """

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []

    def add(self, ranges: Sequence[tuple[int, int]]) -> int:
        """Add ``ranges``; how many seqs were not held before."""
        before = sum(hi - lo + 1 for lo, hi in self.ranges)
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted([*self.ranges, *ranges]):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self.ranges = merged
        return sum(hi - lo + 1 for lo, hi in merged) - before


def assemble(
    days_of: Sequence[DaySummary], *, node: str, days: list[date], zone: ZoneInfo
) -> tuple[list[Day], list[Gap], list[Reset]]:
    """Per day received and missing, the gaps and the resets of one node's streams, from its
    day summaries (rolled up or made from raw points: they read alike)."""
    cells = {d: Day(d) for d in days}
    gaps: list[Gap] = []
    resets: list[Reset] = []
    by_stream: dict[str, list[DaySummary]] = defaultdict(list)
    for s in days_of:
        if s.node == node:
            by_stream[s.stream].append(s)
    streams = sorted(by_stream.items(), key=lambda item: min(x.first_ns for x in item[1]))
    for i, (stream, parts) in enumerate(streams):
        parts.sort(key=lambda x: x.day)
        held = RangeSet()
        # Seqs at the edges of runs -> their first delivery (ns): a gap's time range.
        at: dict[int, int] = {}
        for part in parts:
            added = held.add(part.seqs)  # a seq first delivered on an earlier day counts there
            if part.day in cells:
                cells[part.day].received += added
            edges = [(part.first_seq, part.first_ns), (part.last_seq, part.last_ns)]
            for lo, hi, after_ns, before_ns in part.gaps:
                edges += [(lo - 1, after_ns), (hi + 1, before_ns)]
            for seq, ns in edges:
                at[seq] = min(ns, at.get(seq, ns))
        if i > 0:
            first = min(parts, key=lambda x: x.first_ns)
            resets.append(
                Reset(node, stream, streams[i - 1][0], from_ns(first.first_ns), first.first_seq)
            )
        for (_lo1, hi1), (lo2, _hi2) in itertools.pairwise(held.ranges):
            after, before = from_ns(at[hi1]), from_ns(at[lo2])
            gap = Gap(node, stream, hi1 + 1, lo2 - 1, after, before)
            gaps.append(gap)
            day = after.astimezone(zone).date()
            if day in cells:
                cells[day].missing += gap.count
    return [cells[d] for d in days], gaps, resets


def completeness_month(
    store: ReadSide, fleet: Fleet, *, month: date, zone: ZoneInfo, node: str | None = None
) -> list[NodeDays]:
    """Every node's days of ``month`` (or one node's), nodes of the manifest first."""
    start, end, days = month_range(month, zone)
    parts = summaries(store, start, end, zone, node=node)
    listed = {n.id: n for n in fleet.nodes}
    names = [n.id for n in fleet.nodes] + sorted({p.node for p in parts} - set(listed))
    if node is not None:
        names = [n for n in names if n == node] or [node]
    out = []
    for name in names:
        entry = listed.get(name)
        cells, gaps, resets = assemble(parts, node=name, days=days, zone=zone)
        out.append(
            NodeDays(
                node=name,
                kind=entry.kind if entry else "",
                trial=entry.trial if entry else "",
                site=entry.site if entry else "",
                days=cells,
                gaps=gaps,
                resets=resets,
            )
        )
    return out
