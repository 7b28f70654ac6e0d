"""The read side in InfluxQL, which InfluxDB 1.x, 2.x (v1 compatibility ``/query``) and 3.x answer.

:class:`InfluxQLReader` builds the statements and turns the JSON series back into rows; the
stores give it a function that runs one statement and returns its series.

>>> quote_ident('we"ird'), quote_literal("it's")
('"we\\\\"ird"', "'it\\\\'s'")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cloud.errors import StoreError
from cloud.store.base import FieldValue
from cloud.store.lineprotocol import parse_series_key
from cloud.store.read import (
    AGGREGATE_FNS,
    AggregateFn,
    AggregateQuery,
    Bucket,
    LastValue,
    LatestRow,
    check_name,
    every_ns,
    from_ns,
    to_ns,
)

_IDENT_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_LITERAL_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n"})


def quote_ident(name: str) -> str:
    """A double-quoted InfluxQL identifier (measurement, tag or field name)."""
    return '"' + name.translate(_IDENT_ESCAPES) + '"'


def quote_literal(value: str) -> str:
    """A single-quoted InfluxQL string literal (a tag value to compare with)."""
    return "'" + value.translate(_LITERAL_ESCAPES) + "'"


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a statement's result: name, group tags, columns and rows."""

    name: str
    tags: Mapping[str, str]
    columns: tuple[str, ...]
    values: list[list[Any]] = field(default_factory=list)


def parse_results(documents: list[dict[str, Any]]) -> list[list[Series]]:
    """The series of each statement from ``/query`` JSON (one document, or several chunks).

    A statement's error becomes a :class:`StoreError` naming it. Chunks of the same series
    (``chunked=true``) are joined.
    """
    by_statement: dict[int, dict[tuple[str, tuple[tuple[str, str], ...]], Series]] = {}
    for doc in documents:
        if "error" in doc:
            raise StoreError(f"influxdb query failed: {doc['error']}")
        for result in doc.get("results", []):
            if "error" in result:
                raise StoreError(f"influxdb query failed: {result['error']}")
            stmt = by_statement.setdefault(int(result.get("statement_id", 0)), {})
            for s in result.get("series", []):
                tags = {k: v for k, v in (s.get("tags") or {}).items()}
                key = (s.get("name", ""), tuple(sorted(tags.items())))
                if key in stmt:
                    stmt[key].values.extend(s.get("values") or [])
                else:
                    stmt[key] = Series(
                        s.get("name", ""), tags, tuple(s["columns"]), list(s.get("values") or [])
                    )
    if not by_statement:
        return []
    return [list(by_statement.get(i, {}).values()) for i in range(max(by_statement) + 1)]


#: Runs one InfluxQL statement against the store's database and returns its series.
QueryFn = Callable[[str], list[Series]]
#: Runs several statements in one request and returns each one's series, in order.
ManyFn = Callable[[list[str]], list[list[Series]]]
#: How long a measurement's field types are trusted (they change only with a new shard).
_TYPES_TTL_S = 60.0


def _time_where(since: datetime | None, until: datetime | None) -> list[str]:
    conds = []
    if since is not None:
        conds.append(f"time >= {to_ns(since)}")
    if until is not None:
        conds.append(f"time < {to_ns(until)}")
    return conds


def _where(conds: list[str]) -> str:
    return f" WHERE {' AND '.join(conds)}" if conds else ""


def _aggregate_statement(q: AggregateQuery) -> str:
    if q.fn not in AGGREGATE_FNS:
        raise StoreError(f"aggregate {q.fn!r} is not one of {', '.join(AGGREGATE_FNS)}")
    check_name("field", q.field)
    shift = q.offset // timedelta(microseconds=1)
    group = [f"time({every_ns(q.every) // 1000}u{f', {shift}u' if shift else ''})"]
    if q.by is not None:
        group.append(quote_ident(check_name("tag", q.by)))
    conds = _time_where(q.since, q.until)
    for tag, value in sorted((q.where or {}).items()):
        conds.append(f"{quote_ident(check_name('tag', tag))} = {quote_literal(value)}")
    return (
        f"SELECT {q.fn}({quote_ident(q.field)}) FROM {quote_ident(q.measurement)}"
        f"{_where(conds)} GROUP BY {', '.join(group)} fill(none)"
    )


class InfluxQLReader:
    """The :class:`~cloud.store.read.ReadSide` over any InfluxQL endpoint.

    >>> reader = InfluxQLReader(lambda q: [])
    >>> reader.count("visit", by="node")
    {}
    """

    def __init__(self, query: QueryFn, query_many: ManyFn | None = None) -> None:
        self._query = query
        self._query_many: ManyFn = query_many or (lambda qs: [query(q) for q in qs])
        self._types: dict[str, tuple[float, dict[str, str]]] = {}

    def _field_types(self, measurement: str) -> dict[str, str]:
        """Field name -> "float" | "integer" | "string" | "boolean" (JSON hides 3.0 vs 3)."""
        cached = self._types.get(measurement)
        if cached is not None and time.monotonic() - cached[0] < _TYPES_TTL_S:
            return cached[1]
        types: dict[str, str] = {}
        for s in self._query(f"SHOW FIELD KEYS FROM {quote_ident(measurement)}"):
            for name, kind in s.values:
                types[name] = kind
        if len(self._types) > 1000:
            self._types.clear()
        self._types[measurement] = (time.monotonic(), types)
        return types

    @staticmethod
    def _typed(kind: str | None, value: Any) -> FieldValue:
        if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        result: FieldValue = value
        return result

    def latest(
        self, measurement: str, *, by: str = "node", since: datetime | None = None
    ) -> list[LatestRow]:
        check_name("tag", by)
        types = self._field_types(measurement)
        q = (
            f"SELECT * FROM {quote_ident(measurement)}{_where(_time_where(since, None))}"
            f" GROUP BY {quote_ident(by)} ORDER BY time DESC LIMIT 1"
        )
        rows = []
        for s in self._query(q):
            for values in s.values:
                record = dict(zip(s.columns, values, strict=True))
                time_ns = int(record.pop("time"))
                tags = {k: v for k, v in s.tags.items() if v != ""}
                fields: dict[str, FieldValue] = {}
                for name, value in record.items():
                    if value is None:
                        continue
                    if name in types:
                        fields[name] = self._typed(types[name], value)
                    else:
                        tags[name] = value
                rows.append(LatestRow(s.tags.get(by, ""), time_ns, tags, fields))
        return sorted(rows, key=lambda r: r.key)

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
        query = AggregateQuery(measurement, field, fn, every, by, since, until, where, offset)
        return self.aggregate_many([query])[0]

    def aggregate_many(self, queries: Sequence[AggregateQuery]) -> list[list[Bucket]]:
        statements = [_aggregate_statement(q) for q in queries]
        out = []
        for q, series in zip(queries, self._query_many(statements), strict=True):
            kind = (
                self._field_types(q.measurement).get(q.field)
                if q.fn in ("min", "max", "sum")
                else None
            )
            buckets = []
            for s in series:
                for start, value in s.values:
                    if value is None:
                        continue
                    typed = float(value) if q.fn == "mean" else self._typed(kind, value)
                    if isinstance(typed, str):
                        raise StoreError(
                            f"{q.fn} of {q.measurement}.{q.field} is not a number: {typed!r}"
                        )
                    buckets.append(Bucket(int(start), s.tags.get(q.by, "") if q.by else "", typed))
            out.append(sorted(buckets))
        return out

    def count(
        self,
        measurement: str,
        *,
        by: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, int]:
        group = "" if by is None else f" GROUP BY {quote_ident(check_name('tag', by))}"
        q = (
            f"SELECT count(*) FROM {quote_ident(measurement)}"
            f"{_where(_time_where(since, until))}{group}"
        )
        counts: dict[str, int] = {}
        for s in self._query(q):
            for values in s.values:
                n = max((v for v in values[1:] if v is not None), default=0)
                if n:
                    key = s.tags.get(by, "") if by else ""
                    counts[key] = counts.get(key, 0) + int(n)
        return counts

    def first_time(self, measurement: str) -> datetime | None:
        oldest: int | None = None
        for name in self._field_types(measurement):
            for s in self._query(
                f"SELECT first({quote_ident(name)}) FROM {quote_ident(measurement)}"
            ):
                for time_ns, _value in s.values:
                    oldest = int(time_ns) if oldest is None else min(oldest, int(time_ns))
            break  # every point has its fields' first; one field is enough for a bound
        return None if oldest is None else from_ns(oldest)

    def link_log(
        self, *, since: datetime, until: datetime, node: str | None = None
    ) -> dict[tuple[str, str], dict[int, tuple[int, int]]]:
        conds = _time_where(since, until)
        if node is not None:
            conds.append(f'"node" = {quote_literal(node)}')
        q = f'SELECT "seq", "readings" FROM "link"{_where(conds)} GROUP BY "node", "stream"'
        log: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
        for s in self._query(q):
            seqs = log.setdefault((s.tags.get("node", ""), s.tags.get("stream", "")), {})
            for time_ns, seq, readings in s.values:
                if seq is not None:  # rows come oldest first: the first delivery stays
                    seqs.setdefault(int(seq), (int(time_ns), int(readings or 0)))
        return log

    def points(
        self,
        measurement: str,
        *,
        since: datetime,
        until: datetime,
        node: str | None = None,
        limit: int = 1000,
    ) -> list[LatestRow]:
        types = self._field_types(measurement)
        conds = _time_where(since, until)
        if node is not None:
            conds.append(f'"node" = {quote_literal(node)}')
        q = (
            f"SELECT * FROM {quote_ident(measurement)}{_where(conds)}"
            f" ORDER BY time DESC LIMIT {int(limit)}"
        )
        rows = []
        for s in self._query(q):
            for values in s.values:
                record = dict(zip(s.columns, values, strict=True))
                time_ns = int(record.pop("time"))
                tags: dict[str, str] = {}
                fields: dict[str, FieldValue] = {}
                for name, value in record.items():
                    if value is None:
                        continue
                    if name in types:
                        fields[name] = self._typed(types[name], value)
                    else:
                        tags[name] = str(value)
                rows.append(LatestRow(tags.get("node", ""), time_ns, tags, fields))
        return rows

    def last_values(
        self,
        measurement: str,
        fields: tuple[str, ...],
        *,
        by: str = "node",
        since: datetime | None = None,
    ) -> dict[str, dict[str, LastValue]]:
        check_name("tag", by)
        types = self._field_types(measurement)
        # InfluxQL answers an unknown field with nothing, but it costs a scan: asked for known
        # fields only, one statement each (so each keeps its own time), in one request.
        names = [check_name("field", name) for name in fields if name in types]
        statements = [
            f"SELECT last({quote_ident(name)}) FROM {quote_ident(measurement)}"
            f"{_where(_time_where(since, None))} GROUP BY {quote_ident(by)}"
            for name in names
        ]
        found: dict[str, dict[str, LastValue]] = {}
        for name, series in zip(names, self._query_many(statements), strict=True):
            for s in series:
                for time_ns, value in s.values:
                    if value is not None:
                        found.setdefault(s.tags.get(by, ""), {})[name] = LastValue(
                            int(time_ns), self._typed(types[name], value)
                        )
        return found

    def node_series(self) -> Iterator[tuple[str, dict[str, str]]]:
        """Every series of the database as (measurement, tags), from ``SHOW SERIES``: for the
        collector's budgets (:mod:`cloud.collector.budget`)."""
        for s in self._query("SHOW SERIES"):
            for values in s.values:
                yield parse_series_key(str(values[0]))

    def link_seqs(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        node: str | None = None,
    ) -> dict[tuple[str, str], set[int]]:
        conds = _time_where(since, until)
        if node is not None:
            conds.append(f'"node" = {quote_literal(node)}')
        q = f'SELECT DISTINCT("seq") FROM "link"{_where(conds)} GROUP BY "node", "stream"'
        seqs: dict[tuple[str, str], set[int]] = {}
        for s in self._query(q):
            key = (s.tags.get("node", ""), s.tags.get("stream", ""))
            seqs.setdefault(key, set()).update(int(v[1]) for v in s.values)
        return seqs
