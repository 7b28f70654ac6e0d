"""The read side every store answers for the web app: latest rows, aggregates, counts, link seqs.

Time ranges are half-open: ``since`` inclusive, ``until`` exclusive; ``None`` leaves that end
open. A point without the grouping tag falls in the group ``""``, as InfluxQL reports it.
Buckets of an aggregate are aligned to the epoch (``every`` divides time from 1970-01-01), as
InfluxQL's ``GROUP BY time(every)`` does, and only buckets holding points are returned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from cloud.errors import StoreError
from cloud.store.base import FieldValue

AggregateFn = Literal["mean", "min", "max", "sum", "count"]
AGGREGATE_FNS: tuple[AggregateFn, ...] = ("mean", "min", "max", "sum", "count")

#: Tag and field names the read side accepts in a query (what the wire contract allows, plus the
#: tags the collector adds).
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ns(at: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (exact to the microsecond).

    >>> to_ns(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC))
    1000000000
    """
    if at.tzinfo is None:
        raise StoreError(f"time {at.isoformat()} has no timezone; give an aware datetime")
    return (at - _EPOCH) // timedelta(microseconds=1) * 1000


def from_ns(ns: int) -> datetime:
    """The aware UTC datetime of nanoseconds since the epoch (truncated to microseconds)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def every_ns(every: timedelta) -> int:
    """A bucket width in nanoseconds; it must be at least a microsecond."""
    us = every // timedelta(microseconds=1)
    if us <= 0:
        raise StoreError(f"bucket width {every} must be at least one microsecond")
    return us * 1000


def check_name(what: str, name: str) -> str:
    """``name`` if it can be used as a tag or field name in a query, else a StoreError."""
    if not _NAME.fullmatch(name):
        raise StoreError(f"{what} {name!r} must match {_NAME.pattern}")
    return name


def bucket_start(time_ns: int, width_ns: int) -> int:
    """The start of the epoch-aligned bucket holding ``time_ns``.

    >>> bucket_start(-1, 10), bucket_start(25, 10)
    (-10, 20)
    """
    return time_ns - time_ns % width_ns


@dataclass(frozen=True, slots=True)
class LatestRow:
    """The most recent point of one group: its time, all its tags and its fields.

    >>> LatestRow("rr-01", 1_000, {"node": "rr-01"}, {"battery": 81}).at.year
    1970
    """

    key: str
    time_ns: int
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]

    @property
    def at(self) -> datetime:
        return from_ns(self.time_ns)


@dataclass(frozen=True, slots=True, order=True)
class Bucket:
    """One time bucket of an aggregate for one group (``group`` is ``""`` when not grouped).

    >>> Bucket(0, "rr-01", 2.5).start.isoformat()
    '1970-01-01T00:00:00+00:00'
    """

    start_ns: int
    group: str
    value: float | int = field(compare=False)

    @property
    def start(self) -> datetime:
        return from_ns(self.start_ns)


@dataclass(frozen=True, slots=True)
class LastValue:
    """The newest value of one field for one group, and when it was measured."""

    time_ns: int
    value: FieldValue

    @property
    def at(self) -> datetime:
        return from_ns(self.time_ns)


@dataclass(frozen=True, slots=True)
class AggregateQuery:
    """One :meth:`ReadSide.aggregate` call as data, for :meth:`ReadSide.aggregate_many`."""

    measurement: str
    field: str
    fn: AggregateFn
    every: timedelta
    by: str | None
    since: datetime
    until: datetime
    where: Mapping[str, str] | None = None
    offset: timedelta = timedelta(0)


class ReadSide(Protocol):
    """What the web app asks a store; every backend answers the same way for the same points."""

    def latest(
        self, measurement: str, *, by: str = "node", since: datetime | None = None
    ) -> list[LatestRow]:
        """Per value of tag ``by``, the most recent point of ``measurement``, sorted by key."""
        ...

    def aggregate(
        self,
        measurement: str,
        field: str,
        *,
        fn: AggregateFn,
        every: timedelta,
        by: str | None,
        since: datetime,
        until: datetime,
        where: Mapping[str, str] | None = None,
        offset: timedelta = timedelta(0),
    ) -> list[Bucket]:
        """``fn`` of ``field`` per ``every``-wide bucket and per value of tag ``by``, sorted;
        only points whose tags equal ``where``'s values when given. Buckets start at the
        epoch's multiples of ``every`` moved by ``offset`` (-9 h: days that start at midnight
        in Japan)."""
        ...

    def aggregate_many(self, queries: Sequence[AggregateQuery]) -> list[list[Bucket]]:
        """Each query's buckets, in order (one round trip where the store can)."""
        ...

    def count(
        self,
        measurement: str,
        *,
        by: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, int]:
        """Points of ``measurement`` per value of tag ``by`` (key ``""`` when ``by`` is None).

        A point is counted once whatever fields it holds, provided one field is present in every
        point of the measurement (InfluxQL counts per field; the largest count is taken).
        """
        ...

    def last_values(
        self,
        measurement: str,
        fields: tuple[str, ...],
        *,
        by: str = "node",
        since: datetime | None = None,
    ) -> dict[str, dict[str, LastValue]]:
        """Per value of tag ``by``, the newest value of each of ``fields`` and its time.

        Each field is looked up on its own: a point that lacks it does not hide an older one
        that has it (a birth's ``software`` behind a later "seen" point).
        """
        ...

    def link_seqs(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        node: str | None = None,
    ) -> dict[tuple[str, str], set[int]]:
        """The distinct seqs seen in ``link`` points, per (node, stream)."""
        ...

    def first_time(self, measurement: str) -> datetime | None:
        """When the oldest point of ``measurement`` is, or None when there is none."""
        ...

    def link_log(
        self, *, since: datetime, until: datetime, node: str | None = None
    ) -> dict[tuple[str, str], dict[int, tuple[int, int]]]:
        """Per (node, stream), each seq delivered in the range: its first ``link`` time (ns)
        and how many readings the envelope held."""
        ...

    def points(
        self,
        measurement: str,
        *,
        since: datetime,
        until: datetime,
        node: str | None = None,
        limit: int = 1000,
    ) -> list[LatestRow]:
        """The newest ``limit`` points of ``measurement`` in the range (of ``node``), newest
        first; ``key`` is the node."""
        ...
