"""The dead-letter store: messages the collector could not store, kept with their reasons.

A message that breaks the contract, comes from a node the fleet manifest does not know, goes past
its node's budget, or that the store refuses, is written here (SQLite, committed with a full
fsync) before the broker gets its ack, so nothing is ever dropped in silence. Each record keeps
the topic, the payload, the reasons, and the node, stream and seq when they could be read. The
same (node, stream, seq, reasons) is one record however often a node sends it: ``times`` counts
the copies. ``machikado cloud deadletter replay`` feeds stored payloads through the collector
again, after a fix in the manifest or the contract.

What one node, or all of them, can make it hold is bounded (:class:`Policy`, ``[deadletter]`` in
the collector's config), and whatever is not kept in full is counted, never lost in silence:

- **per record**: the payload is kept up to ``max_payload_bytes`` (its length and SHA-256
  always), the first ``max_reasons`` reasons, each up to ``max_reason_chars``, with the count of
  all of them (``reasons_total``);
- **per node**: ``rate_per_minute`` records in full, with bursts of ``burst``; past that rate a
  record is kept *brief* (``kept = "brief"``): its first ``brief_payload_bytes`` bytes and first
  ``brief_reasons`` reasons, the lengths and counts in full;
- **in total**: past ``max_records`` records or ``max_bytes`` of payload, reasons and topics, the
  oldest records go, those already replayed first, down to nine tenths of the cap: recent
  records say more about what is going wrong now, and a full store never stops taking new ones.
  Each record dropped is added, with its ``times``, to its node's ``dropped`` count.

:meth:`DeadLetters.totals` has the counts (brief and dropped, per node and in all), which
``deadletter list`` prints with the records; the collector's status file counts them too.

>>> import tempfile, pathlib
>>> with DeadLetters(pathlib.Path(tempfile.mkdtemp()) / "dl.sqlite") as dl:
...     first = dl.add(topic="machikado/v1/rr-09/data", payload=b"{}", reasons=["unknown node"])
...     dl.count()
1
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from cloud.errors import CloudError
from machikado.files import create_private_file, make_private_dirs

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    last_received_at TEXT NOT NULL,
    times INTEGER NOT NULL DEFAULT 1,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    payload_len INTEGER NOT NULL,
    payload_sha256 TEXT NOT NULL,
    reasons TEXT NOT NULL,
    node TEXT,
    stream TEXT,
    seq INTEGER,
    dedupe_key TEXT NOT NULL UNIQUE,
    replayed_at TEXT
);
CREATE INDEX IF NOT EXISTS dead_letter_pending ON dead_letter (replayed_at, id);
CREATE TABLE IF NOT EXISTS dead_letter_tally (
    node TEXT PRIMARY KEY,
    brief INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0
);
"""
#: Columns added since the first schema, for files made before them.
_ADDED_COLUMNS = {
    "reasons_total": "INTEGER",
    "kept": "TEXT NOT NULL DEFAULT 'full'",
    "size": "INTEGER NOT NULL DEFAULT 0",
}
#: A record's bytes towards ``max_bytes``.
_SIZE_SQL = "length(payload) + length(CAST(reasons AS BLOB)) + length(CAST(topic AS BLOB))"
#: The node key of the tally for records whose node could not be read.
_NO_NODE = ""
#: Nodes whose rate is followed at once; past it the buckets start over (a flood of made-up
#: node ids must not grow this without end).
_BUCKETS_MAX = 10_000


@dataclass(frozen=True)
class Policy:
    """How much the dead-letter store keeps: per record, per node and in total."""

    #: Payload bytes kept of a record (its length and SHA-256 are kept whole).
    max_payload_bytes: int = 65_536
    #: Reasons kept of a record, and characters of each.
    max_reasons: int = 20
    max_reason_chars: int = 500
    #: Records per node per minute kept in full, and how many may come at once.
    rate_per_minute: float = 60.0
    burst: int = 100
    #: What a record past its node's rate keeps.
    brief_payload_bytes: int = 256
    brief_reasons: int = 3
    #: The whole store: records, and bytes of payloads, reasons and topics.
    max_records: int = 100_000
    max_bytes: int = 256 * 2**20


DEFAULT_POLICY = Policy()


@dataclass(frozen=True, slots=True)
class Kept:
    """What :meth:`DeadLetters.keep` did with one message."""

    #: The record that holds it (a repeat is counted on the first one's record).
    id: int
    #: "full", or "brief" when its node was past ``rate_per_minute``.
    kept: str
    #: Records the total cap made go to make room (0 almost always).
    dropped: int = 0


class DeadLetterError(CloudError):
    """The dead-letter store cannot be opened or written, or a record does not exist."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-letter record."""

    id: int
    received_at: datetime
    last_received_at: datetime
    times: int
    topic: str
    payload: bytes
    payload_len: int
    payload_sha256: str
    reasons: tuple[str, ...]
    node: str | None
    stream: str | None
    seq: int | None
    replayed_at: datetime | None
    #: How many reasons the message had (``reasons`` holds the first of them).
    reasons_total: int = 0
    #: "full", or "brief" when it came past its node's rate (see the module's docstring).
    kept: str = "full"

    @property
    def complete(self) -> bool:
        """Whether the whole payload was kept (only then can it be replayed)."""
        return len(self.payload) == self.payload_len

    def summary(self) -> dict[str, object]:
        """The record without its payload, for listings (JSON-ready)."""
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "times": self.times,
            "topic": self.topic,
            "node": self.node,
            "stream": self.stream,
            "seq": self.seq,
            "kept": self.kept,
            "reasons": list(self.reasons),
            "reasons_total": self.reasons_total,
            "payload_len": self.payload_len,
            "payload_kept": len(self.payload),
            "replayed_at": self.replayed_at.isoformat() if self.replayed_at else None,
        }

    def detail(self) -> dict[str, object]:
        """Everything, the payload as text where it is UTF-8 (JSON-ready)."""
        try:
            payload: str = self.payload.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            payload, encoding = self.payload.hex(), "hex"
        return {
            **self.summary(),
            "last_received_at": self.last_received_at.isoformat(),
            "payload_sha256": self.payload_sha256,
            "payload_encoding": encoding,
            "payload": payload,
        }


def _now() -> datetime:
    return datetime.now(UTC)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class DeadLetters:
    """The dead-letter store in one SQLite file; safe to share between threads.

    Every write commits with ``synchronous=FULL``: when :meth:`add` returns, the record survives
    a power cut, so the collector may ack the broker. ``clock`` (seconds, monotonic) paces the
    rate per node.
    """

    def __init__(
        self,
        path: Path,
        *,
        policy: Policy = DEFAULT_POLICY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.policy = policy
        self._clock = clock
        #: Node -> (tokens left, when counted): full records it may still have at once.
        self._buckets: dict[str, tuple[float, float]] = {}
        try:
            make_private_dirs(path.parent)
            create_private_file(path)  # 0600, and so its -wal and -shm (machikado.files)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
            self._add_columns()
        except (OSError, sqlite3.Error) as exc:
            raise DeadLetterError(f"dead-letter store {path}: cannot open it: {exc}") from None
        self._lock = threading.Lock()

    def _add_columns(self) -> None:
        """Bring a file of the first schema up to this one (its records keep what they had)."""
        if self._columns() >= _ADDED_COLUMNS.keys():
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            have = self._columns()  # again: another process may have added them meanwhile
            for name, kind in _ADDED_COLUMNS.items():
                if name not in have:
                    self._db.execute(f"ALTER TABLE dead_letter ADD COLUMN {name} {kind}")
            self._db.execute(f"UPDATE dead_letter SET size = {_SIZE_SQL} WHERE size = 0")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _columns(self) -> set[str]:
        return {row["name"] for row in self._db.execute("PRAGMA table_info(dead_letter)")}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(
        self,
        *,
        topic: str,
        payload: bytes,
        reasons: Sequence[str],
        node: str | None = None,
        stream: str | None = None,
        seq: int | None = None,
        received_at: datetime | None = None,
    ) -> int:
        """Store one message with its reasons, durably; return the record's id (see
        :meth:`keep`)."""
        return self.keep(
            topic=topic,
            payload=payload,
            reasons=reasons,
            node=node,
            stream=stream,
            seq=seq,
            received_at=received_at,
        ).id

    def keep(
        self,
        *,
        topic: str,
        payload: bytes,
        reasons: Sequence[str],
        node: str | None = None,
        stream: str | None = None,
        seq: int | None = None,
        received_at: datetime | None = None,
    ) -> Kept:
        """Store one message with its reasons, durably and within the :class:`Policy`.

        A message already held for the same reasons (same node, stream and seq; or, when those
        are unknown, the same topic and payload) is counted on its record instead.
        """
        policy = self.policy
        received = (received_at or _now()).astimezone(UTC).isoformat()
        sha = hashlib.sha256(payload).hexdigest()
        who = [node, stream, seq] if seq is not None and stream else [topic, sha]
        key = hashlib.sha256(json.dumps([*who, list(reasons)]).encode()).hexdigest()
        full = self._take_token(node or _NO_NODE)
        if full:
            kept, n_reasons = payload[: policy.max_payload_bytes], policy.max_reasons
        else:
            kept, n_reasons = payload[: policy.brief_payload_bytes], policy.brief_reasons
        shown = [_cut(r, policy.max_reason_chars) for r in reasons[:n_reasons]]
        reasons_json = json.dumps(shown, ensure_ascii=False)
        size = len(kept) + len(reasons_json.encode()) + len(topic.encode())
        how = "full" if full else "brief"
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    record_id, times = self._db.execute(
                        "INSERT INTO dead_letter (received_at, last_received_at, topic, payload,"
                        " payload_len, payload_sha256, reasons, reasons_total, kept, size, node,"
                        " stream, seq, dedupe_key)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (dedupe_key) DO UPDATE SET times = times + 1,"
                        " last_received_at = excluded.last_received_at"
                        " RETURNING id, times",
                        (
                            received,
                            received,
                            topic,
                            kept,
                            len(payload),
                            sha,
                            reasons_json,
                            len(reasons),
                            how,
                            size,
                            node,
                            stream,
                            seq,
                            key,
                        ),
                    ).fetchone()
                    dropped = 0
                    if times == 1:  # a new record: count it, and make room if over the cap
                        if not full:
                            self._tally(node, "brief", 1)
                        dropped = self._make_room(record_id)
                    else:
                        how = self._db.execute(
                            "SELECT kept FROM dead_letter WHERE id = ?", (record_id,)
                        ).fetchone()[0]
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise DeadLetterError(f"dead-letter store {self.path}: cannot write: {exc}") from None
        return Kept(int(record_id), how, dropped)

    def _take_token(self, node: str) -> bool:
        """Whether ``node`` is within its rate of full records (and count this one if so)."""
        policy = self.policy
        now = self._clock()
        with self._lock:
            buckets = self._buckets
            tokens, then = buckets.get(node, (float(policy.burst), now))
            tokens = min(float(policy.burst), tokens + (now - then) * policy.rate_per_minute / 60)
            full = tokens >= 1.0
            if len(buckets) >= _BUCKETS_MAX and node not in buckets:
                buckets.clear()
            buckets[node] = (tokens - 1.0 if full else tokens, now)
        return full

    def _tally(self, node: str | None, what: str, n: int) -> None:
        self._db.execute(
            f"INSERT INTO dead_letter_tally (node, {what}) VALUES (?, ?)"
            f" ON CONFLICT (node) DO UPDATE SET {what} = {what} + excluded.{what}",
            (node or _NO_NODE, n),
        )

    def _make_room(self, newest: int) -> int:
        """Within the transaction: past the total cap, drop the oldest records (replayed ones
        first, never ``newest``) down to nine tenths of it; how many went."""
        policy = self.policy
        records, size = self._db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM dead_letter"
        ).fetchone()
        if records <= policy.max_records and size <= policy.max_bytes:
            return 0
        keep_records, keep_bytes = policy.max_records * 9 // 10, policy.max_bytes * 9 // 10
        rows = self._db.execute(
            "SELECT id, node, times, size FROM dead_letter WHERE id != ?"
            " ORDER BY replayed_at IS NULL, id",
            (newest,),
        )
        going: list[tuple[int, str | None, int]] = []
        for row in rows:
            if records <= keep_records and size <= keep_bytes:
                break
            going.append((row["id"], row["node"], row["times"]))
            records -= 1
            size -= row["size"]
        self._db.executemany("DELETE FROM dead_letter WHERE id = ?", [(g[0],) for g in going])
        per_node: dict[str | None, int] = {}
        for _id, node, times in going:
            per_node[node] = per_node.get(node, 0) + times
        for node, times in per_node.items():
            self._tally(node, "dropped", times)
        return len(going)

    def totals(self) -> dict[str, Any]:
        """Records held (and pending), and the messages not kept in full: brief (past their
        node's rate) and dropped (their records made room for newer ones), in all and per node
        (``""``: the node could not be read)."""
        with self._lock:
            records, pending = self._db.execute(
                "SELECT count(*), count(*) FILTER (WHERE replayed_at IS NULL) FROM dead_letter"
            ).fetchone()
            rows = self._db.execute(
                "SELECT node, brief, dropped FROM dead_letter_tally ORDER BY node"
            ).fetchall()
        by_node = {r["node"]: {"brief": r["brief"], "dropped": r["dropped"]} for r in rows}
        return {
            "records": records,
            "pending": pending,
            "brief": sum(n["brief"] for n in by_node.values()),
            "dropped": sum(n["dropped"] for n in by_node.values()),
            "by_node": by_node,
        }

    def count(self, *, pending_only: bool = False) -> int:
        """How many records there are (``pending_only``: not replayed yet)."""
        where = " WHERE replayed_at IS NULL" if pending_only else ""
        with self._lock:
            (n,) = self._db.execute(f"SELECT count(*) FROM dead_letter{where}").fetchone()
        return int(n)

    def records(self, *, pending_only: bool = False, limit: int = 1000) -> list[DeadLetter]:
        """Records, oldest first."""
        where = " WHERE replayed_at IS NULL" if pending_only else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM dead_letter{where} ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [self._record(r) for r in rows]

    def get(self, record_id: int) -> DeadLetter:
        """One record; raise :class:`DeadLetterError` when there is none with this id."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM dead_letter WHERE id = ?", (record_id,)
            ).fetchone()
        if row is None:
            raise DeadLetterError(f"dead-letter store {self.path}: no record {record_id}")
        return self._record(row)

    def mark_replayed(self, record_id: int, at: datetime | None = None) -> None:
        """Note that a record's message is now stored."""
        when = (at or _now()).astimezone(UTC).isoformat()
        with self._lock:
            self._db.execute(
                "UPDATE dead_letter SET replayed_at = ? WHERE id = ?", (when, record_id)
            )

    def _record(self, row: Any) -> DeadLetter:
        reasons = tuple(json.loads(row["reasons"]))
        return DeadLetter(
            id=row["id"],
            received_at=datetime.fromisoformat(row["received_at"]),
            last_received_at=datetime.fromisoformat(row["last_received_at"]),
            times=row["times"],
            topic=row["topic"],
            payload=bytes(row["payload"]),
            payload_len=row["payload_len"],
            payload_sha256=row["payload_sha256"],
            reasons=reasons,
            node=row["node"],
            stream=row["stream"],
            seq=row["seq"],
            replayed_at=_time(row["replayed_at"]),
            reasons_total=row["reasons_total"]
            if row["reasons_total"] is not None
            else len(reasons),
            kept=row["kept"],
        )


def _cut(text: str, chars: int) -> str:
    """``text``, or its first ``chars`` characters and a note of how many there were."""
    if len(text) <= chars:
        return text
    return f"{text[:chars]}... ({len(text)} characters)"


#: Characters a terminal acts on or hides instead of showing: C0 and C1 controls, DEL, Unicode
#: format characters (bidi embeddings, overrides and isolates, zero-width ...), line and
#: paragraph separators, lone surrogates.
_UNSHOWN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_NOT_PLAIN_ASCII = re.compile(r"[^\x20-\x7e]")
_NOT_SHOWN_IN_JSON = re.compile(r"[^\x20-\x7e\n]")


def _escape(match: re.Match[str]) -> str:
    c = match[0]
    if unicodedata.category(c) not in _UNSHOWN:
        return c
    code = ord(c)
    if code > 0xFFFF:  # as JSON writes it: a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def printable(text: str) -> str:
    r"""``text`` with every character a terminal would act on or hide written as ``\uXXXX``.

    In a log line it shows what was there instead of doing it.

    >>> printable("ok \u202eevil\x1b[2J つくば")
    'ok \\u202eevil\\u001b[2J つくば'
    """
    return _NOT_PLAIN_ASCII.sub(_escape, text)


def printable_json(data: Any) -> str:
    r"""``data`` as indented JSON that a terminal shows as it is: what :func:`printable` escapes
    is escaped inside its strings too, so the JSON reads back the very same data.

    >>> text = printable_json({"topic": "a\u202eb", "payload": "\x85つくば"})
    >>> text.splitlines()[1:3]
    ['  "topic": "a\\u202eb",', '  "payload": "\\u0085つくば"']
    >>> json.loads(text) == {"topic": "a\u202eb", "payload": "\x85つくば"}
    True
    """
    # json.dumps escapes every C0 control inside strings, so a raw newline in its output is
    # one of its own line breaks: kept. What it leaves raw in strings (DEL, C1, format
    # characters, separators) gets the same \uXXXX escape JSON itself uses.
    return _NOT_SHOWN_IN_JSON.sub(_escape, json.dumps(data, indent=2, ensure_ascii=False))
