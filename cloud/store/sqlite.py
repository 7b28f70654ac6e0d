"""The embedded store: one SQLite file, the zero-setup default behind the same interface.

Schema (version 1, ``PRAGMA user_version``)::

    points(measurement TEXT, series TEXT, time_ns INTEGER, fields TEXT,
           PRIMARY KEY (measurement, series, time_ns))

``series`` is the tag set as canonical JSON (sorted keys, no spaces, UTF-8), ``fields`` a JSON
object. A point with the same key as a stored one is merged into it as InfluxDB does: the new
fields overwrite, fields it does not name are kept. The file runs in WAL mode with
``synchronous=FULL``, so a returned ``write`` survives a power cut.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from cloud.errors import PointsRejected, StoreError, StoreUnavailable
from cloud.store.base import FieldValue, Point
from cloud.store.lineprotocol import point_problems
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
from machikado.files import create_private_file, make_private_dirs
from protocol.limits import RESERVED_MEASUREMENTS

log = structlog.get_logger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    measurement TEXT NOT NULL,
    series TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (measurement, series, time_ns)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_by_time ON points (measurement, time_ns);
CREATE INDEX IF NOT EXISTS points_by_node
    ON points (measurement, json_extract(series, '$.node'), time_ns);
CREATE INDEX IF NOT EXISTS points_by_link
    ON points (measurement, json_extract(series, '$.node'), json_extract(series, '$.stream'))
    WHERE measurement = 'link';
"""

# New fields overwrite, the others stay: what InfluxDB does with a point written again.
_UPSERT = """
INSERT INTO points (measurement, series, time_ns, fields) VALUES (?, ?, ?, ?)
ON CONFLICT (measurement, series, time_ns)
DO UPDATE SET fields = json_patch(points.fields, excluded.fields)
"""

_SQL_FN = {"mean": "avg", "min": "min", "max": "max", "sum": "sum", "count": "count"}


def _json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _path(what: str, name: str) -> str:
    """A JSON path literal for SQL; the name is checked to hold only letters, digits and _."""
    return f"'$.{check_name(what, name)}'"


def _range(since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
    sql: str = ""
    args: list[Any] = []
    if since is not None:
        sql += " AND time_ns >= ?"
        args.append(to_ns(since))
    if until is not None:
        sql += " AND time_ns < ?"
        args.append(to_ns(until))
    return sql, args


class SqliteStore:
    """Points in one SQLite file; several processes may read it while one writes.

    >>> store = SqliteStore(":memory:")
    >>> store.write([Point("visit", {"node": "rr-01"}, {"duration_s": 3.5}, 1)])
    >>> store.count("visit", by="node")
    {'rr-01': 1}
    """

    name = "sqlite"

    def __init__(self, path: Path | str, *, timeout_s: float = 10.0) -> None:
        self.path = Path(path) if str(path) != ":memory:" else None
        if self.path is not None:
            try:
                make_private_dirs(self.path.parent)
                create_private_file(self.path)  # 0600, and so its -wal and -shm (machikado.files)
            except OSError as exc:
                raise StoreError(f"{path}: cannot create the store: {exc}") from None
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{path} has store schema {version}; this machikado reads up to"
                    f" {SCHEMA_VERSION}"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite store {path}: {exc}") from exc

    def write(self, points: Sequence[Point]) -> None:
        """Upsert ``points`` in one transaction; nothing is written if any is refused."""
        reasons = [
            f"point {p.measurement!r} {dict(p.tags)!r} at {p.time_ns}: {r}"
            for p in points
            for r in point_problems(p)
        ]
        if reasons:
            raise PointsRejected(reasons)
        rows = [
            (p.measurement, _json(dict(p.tags)), p.time_ns, _json(dict(p.fields))) for p in points
        ]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(_UPSERT, rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                log.warning("sqlite_write_failed", path=str(self.path), error=str(exc))
                raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc

    def ping(self) -> str:
        return f"sqlite {sqlite3.sqlite_version}"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc

    def latest(
        self, measurement: str, *, by: str = "node", since: datetime | None = None
    ) -> list[LatestRow]:
        where, args = _range(since, None)
        tag = _path("tag", by)
        rows = self._rows(
            f"""SELECT key, series, time_ns, fields FROM (
                  SELECT coalesce(json_extract(series, {tag}), '') AS key, series, time_ns, fields,
                         row_number() OVER (PARTITION BY json_extract(series, {tag})
                                            ORDER BY time_ns DESC) AS rank
                  FROM points WHERE measurement = ?{where})
                WHERE rank = 1 ORDER BY key""",
            [measurement, *args],
        )
        return [
            LatestRow(str(key), int(t), json.loads(series), _fields(fields))
            for key, series, t, fields in rows
        ]

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
        if fn not in AGGREGATE_FNS:
            raise StoreError(f"aggregate {fn!r} is not one of {', '.join(AGGREGATE_FNS)}")
        width = every_ns(every)
        shift = offset // timedelta(microseconds=1) * 1000
        sql, args = _range(since, until)
        for tag, value in sorted((where or {}).items()):
            sql += f" AND json_extract(series, {_path('tag', tag)}) = ?"
            args.append(value)
        group = (
            f"coalesce(json_extract(series, {_path('tag', by)}), '')" if by is not None else "''"
        )
        value = _path("field", field)
        rows = self._rows(
            f"""SELECT time_ns - ((((time_ns - ?) % ?) + ?) % ?) AS bucket, {group} AS grp,
                       {_SQL_FN[fn]}(json_extract(fields, {value}))
                FROM points
                WHERE measurement = ? AND json_type(fields, {value}) IS NOT NULL{sql}
                GROUP BY bucket, grp ORDER BY bucket, grp""",
            [shift, width, width, width, measurement, *args],
        )
        buckets = []
        for start, grp, value in rows:
            if value is None:
                continue
            typed: float | int = float(value) if fn == "mean" else value
            buckets.append(Bucket(int(start), str(grp), typed))
        return buckets

    def aggregate_many(self, queries: Sequence[AggregateQuery]) -> list[list[Bucket]]:
        return [
            self.aggregate(
                q.measurement,
                q.field,
                fn=q.fn,
                every=q.every,
                by=q.by,
                since=q.since,
                until=q.until,
                where=q.where,
                offset=q.offset,
            )
            for q in queries
        ]

    def count(
        self,
        measurement: str,
        *,
        by: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, int]:
        where, args = _range(since, until)
        group = (
            f"coalesce(json_extract(series, {_path('tag', by)}), '')" if by is not None else "''"
        )
        rows = self._rows(
            f"""SELECT {group} AS grp, count(*) FROM points
                WHERE measurement = ?{where} GROUP BY grp""",
            [measurement, *args],
        )
        return {str(grp): int(n) for grp, n in rows if n}

    def first_time(self, measurement: str) -> datetime | None:
        rows = self._rows("SELECT min(time_ns) FROM points WHERE measurement = ?", [measurement])
        return None if not rows or rows[0][0] is None else from_ns(int(rows[0][0]))

    def link_log(
        self, *, since: datetime, until: datetime, node: str | None = None
    ) -> dict[tuple[str, str], dict[int, tuple[int, int]]]:
        where, args = _range(since, until)
        if node is not None:
            where += " AND json_extract(series, '$.node') = ?"
            args.append(node)
        rows = self._rows(
            f"""SELECT coalesce(json_extract(series, '$.node'), ''),
                       coalesce(json_extract(series, '$.stream'), ''),
                       json_extract(fields, '$.seq'), min(time_ns),
                       max(json_extract(fields, '$.readings'))
                FROM points WHERE measurement = 'link'{where}
                GROUP BY 1, 2, 3""",
            args,
        )
        log: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
        for n, stream, seq, time_ns, readings in rows:
            if seq is not None:
                log.setdefault((str(n), str(stream)), {})[int(seq)] = (
                    int(time_ns),
                    int(readings or 0),
                )
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
        where, args = _range(since, until)
        if node is not None:
            where += " AND json_extract(series, '$.node') = ?"
            args.append(node)
        rows = self._rows(
            f"""SELECT series, time_ns, fields FROM points
                WHERE measurement = ?{where} ORDER BY time_ns DESC LIMIT ?""",
            [measurement, *args, int(limit)],
        )
        out = []
        for series, t, fields in rows:
            tags = json.loads(series)
            out.append(LatestRow(str(tags.get("node", "")), int(t), tags, _fields(fields)))
        return out

    def last_values(
        self,
        measurement: str,
        fields: tuple[str, ...],
        *,
        by: str = "node",
        since: datetime | None = None,
    ) -> dict[str, dict[str, LastValue]]:
        where, args = _range(since, None)
        tag = _path("tag", by)
        found: dict[str, dict[str, LastValue]] = {}
        for name in fields:
            value = _path("field", name)
            # SQLite returns the other columns of the row that holds max(): the newest value.
            rows = self._rows(
                f"""SELECT coalesce(json_extract(series, {tag}), ''), max(time_ns),
                           json_extract(fields, {value}), json_type(fields, {value})
                    FROM points
                    WHERE measurement = ? AND json_type(fields, {value}) IS NOT NULL{where}
                    GROUP BY 1""",
                [measurement, *args],
            )
            for key, time_ns, raw, kind in rows:
                typed: FieldValue = bool(raw) if kind in ("true", "false") else raw
                found.setdefault(str(key), {})[name] = LastValue(int(time_ns), typed)
        return found

    def link_seqs(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        node: str | None = None,
    ) -> dict[tuple[str, str], set[int]]:
        where, args = _range(since, until)
        if node is not None:
            where += " AND json_extract(series, '$.node') = ?"
            args.append(node)
        rows = self._rows(
            f"""SELECT DISTINCT coalesce(json_extract(series, '$.node'), ''),
                       coalesce(json_extract(series, '$.stream'), ''),
                       json_extract(fields, '$.seq')
                FROM points WHERE measurement = 'link'{where}""",
            args,
        )
        seqs: dict[tuple[str, str], set[int]] = {}
        for n, stream, seq in rows:
            if seq is not None:
                seqs.setdefault((str(n), str(stream)), set()).add(int(seq))
        return seqs

    def node_series(self) -> Iterator[tuple[str, dict[str, str]]]:
        """Every series of a node's readings as (measurement, tags): for the collector's
        budgets (:mod:`cloud.collector.budget`). The cloud's own measurements are left out."""
        cloud = sorted(RESERVED_MEASUREMENTS)
        rows = self._rows(
            "SELECT DISTINCT measurement, series FROM points"
            f" WHERE measurement NOT IN ({', '.join('?' * len(cloud))})",
            cloud,
        )
        for measurement, series in rows:
            yield str(measurement), json.loads(series)


def _fields(text: str) -> dict[str, FieldValue]:
    value: dict[str, FieldValue] = json.loads(text)
    return value
