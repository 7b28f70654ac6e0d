"""The dead-letter store: messages the collector could not store, kept with every reason.

A message that breaks the contract, comes from a node the fleet manifest does not know, or that
the store refuses, is written here (SQLite, committed with a full fsync) before the broker gets
its ack, so nothing is ever dropped in silence. Each record keeps the topic, the payload (cut to
``max_payload_bytes``, with its original length and SHA-256), the reasons, and the node, stream
and seq when they could be read. The same (node, stream, seq, reasons) is one record however
often a node sends it: ``times`` counts the copies. ``machikado cloud deadletter replay`` feeds
stored payloads through the collector again, after a fix in the manifest or the contract.

>>> import tempfile, pathlib
>>> with DeadLetters(pathlib.Path(tempfile.mkdtemp()) / "dl.sqlite") as dl:
...     first = dl.add(topic="machikado/v1/rr-09/data", payload=b"{}", reasons=["unknown node"])
...     dl.count()
1
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from cloud.errors import CloudError
from protocol.files import create_private_file, make_private_dirs

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
"""


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
            "reasons": list(self.reasons),
            "payload_len": self.payload_len,
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
            "payload_kept": len(self.payload),
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
    a power cut, so the collector may ack the broker.
    """

    def __init__(self, path: Path, *, max_payload_bytes: int = 65536) -> None:
        self.path = path
        self.max_payload_bytes = max_payload_bytes
        try:
            make_private_dirs(path.parent)
            create_private_file(path)  # 0600, and so its -wal and -shm (protocol.files)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise DeadLetterError(f"dead-letter store {path}: cannot open it: {exc}") from None
        self._lock = threading.Lock()

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
        """Store one message with its reasons, durably; return the record's id.

        A message already held for the same reasons (same node, stream and seq; or, when those
        are unknown, the same topic and payload) is counted on its record instead.
        """
        received = (received_at or _now()).astimezone(UTC).isoformat()
        sha = hashlib.sha256(payload).hexdigest()
        reasons_json = json.dumps(list(reasons), ensure_ascii=False)
        who = [node, stream, seq] if seq is not None and stream else [topic, sha]
        key = hashlib.sha256(json.dumps([*who, list(reasons)]).encode()).hexdigest()
        kept = payload[: self.max_payload_bytes]
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    row = self._db.execute(
                        "INSERT INTO dead_letter (received_at, last_received_at, topic, payload,"
                        " payload_len, payload_sha256, reasons, node, stream, seq, dedupe_key)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (dedupe_key) DO UPDATE SET times = times + 1,"
                        " last_received_at = excluded.last_received_at"
                        " RETURNING id",
                        (
                            received,
                            received,
                            topic,
                            kept,
                            len(payload),
                            sha,
                            reasons_json,
                            node,
                            stream,
                            seq,
                            key,
                        ),
                    ).fetchone()
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise DeadLetterError(f"dead-letter store {self.path}: cannot write: {exc}") from None
        return int(row[0])

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
        return DeadLetter(
            id=row["id"],
            received_at=datetime.fromisoformat(row["received_at"]),
            last_received_at=datetime.fromisoformat(row["last_received_at"]),
            times=row["times"],
            topic=row["topic"],
            payload=bytes(row["payload"]),
            payload_len=row["payload_len"],
            payload_sha256=row["payload_sha256"],
            reasons=tuple(json.loads(row["reasons"])),
            node=row["node"],
            stream=row["stream"],
            seq=row["seq"],
            replayed_at=_time(row["replayed_at"]),
        )
