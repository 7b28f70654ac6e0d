"""Completeness per node and day: envelopes received against envelopes expected, the gaps with
their time ranges, and stream resets shown as such.

A node numbers its envelopes 1, 2, 3 ... within a stream, so every seq missing between two it
delivered is an envelope that has not arrived; it counts against the day (in the city's time
zone) of the envelope before it. A new stream (a new outbox) is a reset, not a gap: the old
stream's end and the new one's start are not compared. Seqs before the month's first one are
outside the range asked about and not counted.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cloud.fleet import Fleet
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


def node_days(
    log: Mapping[tuple[str, str], Mapping[int, int]],
    *,
    node: str,
    days: list[date],
    zone: ZoneInfo,
) -> tuple[list[Day], list[Gap], list[Reset]]:
    """Per day received and missing, the gaps and the resets of one node's streams."""
    cells = {d: Day(d) for d in days}
    gaps: list[Gap] = []
    streams = sorted(
        ((stream, seqs) for (n, stream), seqs in log.items() if n == node and seqs),
        key=lambda item: min(item[1].values()),
    )
    resets: list[Reset] = []
    for i, (stream, seqs) in enumerate(streams):
        ordered = sorted(seqs)
        if i > 0:
            first_at = from_ns(seqs[ordered[0]])
            resets.append(Reset(node, stream, streams[i - 1][0], first_at, ordered[0]))
        for seq in ordered:
            day = from_ns(seqs[seq]).astimezone(zone).date()
            if day in cells:
                cells[day].received += 1
        for before, after in itertools.pairwise(ordered):
            if after > before + 1:
                at = from_ns(seqs[before])
                gap = Gap(node, stream, before + 1, after - 1, at, from_ns(seqs[after]))
                gaps.append(gap)
                day = at.astimezone(zone).date()
                if day in cells:
                    cells[day].missing += gap.count
    return [cells[d] for d in days], gaps, resets


def completeness_month(
    store: ReadSide, fleet: Fleet, *, month: date, zone: ZoneInfo, node: str | None = None
) -> list[NodeDays]:
    """Every node's days of ``month`` (or one node's), nodes of the manifest first."""
    start, end, days = month_range(month, zone)
    log = store.link_log(since=start, until=end, node=node)
    listed = {n.id: n for n in fleet.nodes}
    names = [n.id for n in fleet.nodes] + sorted({n for n, _s in log} - set(listed))
    if node is not None:
        names = [n for n in names if n == node] or [node]
    out = []
    for name in names:
        entry = listed.get(name)
        cells, gaps, resets = node_days(log, node=name, days=days, zone=zone)
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
