"""The node's durable outbox: readings wait here, numbered, until the cloud says they are stored.

Sensor agents :meth:`Outbox.append` readings (in memory, no I/O); the runtime calls
:meth:`Outbox.commit` every commit window, which seals them into envelopes, gives each the
next ``seq`` of the node's stream and writes them in one fsync'd transaction. From that moment
a reading counts as accepted: it survives ``kill -9`` and power loss. The MQTT link asks for
:meth:`Outbox.due` rows, records the hand-out with :meth:`Outbox.mark_sent`, and deletes rows
only when the cloud's receipt covers them (:meth:`Outbox.receipt`).

Besides readings it holds other messages that must reach the cloud, such as a kiosk's sealed
consultation request (:meth:`Outbox.put_message`): each waits under its own key until the cloud
acknowledges that key (:meth:`Outbox.ack_message`), and is handed out and sent again like an
envelope, unless its sender drops it as run out (:meth:`Outbox.drop_messages`). They use no seq
and leave the reading counters alone.

Storage is one SQLite file in WAL mode, so ``machikado edge status`` can read
:meth:`Outbox.read_stats` from another process while the agent writes. Schema version 2
(``PRAGMA user_version = 2``, ``PRAGMA application_id = 0x6D6B6F62`` "mkob"; a version 1 file
gets the ``message`` table when it is opened for writing)::

    outbox    one row (id = 1): node, stream (uuid4 hex, made with the file), created_at,
              last_seq (the last seq handed out; never decreases, so seqs are never reused),
              produced, sent, receipted, dropped (reading counters, each updated in the same
              transaction as the change it counts)
    envelope  seq INTEGER PRIMARY KEY, created_at, n_readings, readings_json (exactly
              ``protocol.encode_readings``), attempts, last_sent_at (NULL: never handed out,
              or made due again by forget_sent)
    index envelope_due (last_sent_at, seq, n_readings, created_at): due() reads only this
              index to choose rows, so a large backlog does not slow each send tick
    message   id INTEGER PRIMARY KEY, topic_suffix (below the node's topic level, e.g.
              ``consult/request``), payload, created_at, last_sent_at, attempts, key (UNIQUE:
              what the cloud's acknowledgement names)

Commits that accept readings run with ``synchronous=FULL``. Hand-outs, ``forget_sent`` and
receipts run with ``synchronous=NORMAL``: losing the last of those to a power cut only means
an envelope is sent again, which the cloud stores idempotently, and it spares the SD card an
fsync per send tick; the next FULL commit makes them durable too (WAL is written in order).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self, get_args
from urllib.parse import quote

import structlog

from edge.errors import OutboxError, OutboxFull
from machikado.files import create_private_file, make_private_dirs
from protocol.limits import CONTROL as CONTROL_CHARS
from protocol.limits import DEFAULT_LIMITS, INT64_MAX, NODE_ID
from protocol.messages import Reading

log = structlog.get_logger(__name__)

#: Schema version, kept in ``PRAGMA user_version``.
SCHEMA_VERSION = 2
#: Older schema versions this code reads, and upgrades when it opens the file for writing.
_UPGRADABLE = frozenset({1})
#: Marks an SQLite file as a machikado outbox ("mkob"), kept in ``PRAGMA application_id``.
APPLICATION_ID = 0x6D6B6F62
#: How long a statement waits for another connection's lock before failing.
BUSY_TIMEOUT_MS = 5_000
#: Bytes the WAL file is cut back to after a checkpoint.
WAL_SIZE_LIMIT = 4 * 1024 * 1024
#: Room left in a payload for the envelope around the readings (node, stream, seq, sent_at).
_ENVELOPE_OVERHEAD = 1024
#: Bound on an envelope's readings JSON, so every envelope fits the wire contract's payload.
MAX_READINGS_BYTES = DEFAULT_LIMITS.max_payload_bytes - _ENVELOPE_OVERHEAD
#: Bound on parameters in one ``IN (...)`` list (SQLite's own limit is far higher).
_CHUNK = 500

WhenFull = Literal["drop_oldest", "drop_newest", "refuse"]

_SCHEMA = f"""
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    node TEXT NOT NULL,
    stream TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seq INTEGER NOT NULL,
    produced INTEGER NOT NULL,
    sent INTEGER NOT NULL,
    receipted INTEGER NOT NULL,
    dropped INTEGER NOT NULL
);
CREATE TABLE envelope (
    seq INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    n_readings INTEGER NOT NULL CHECK (n_readings >= 1),
    readings_json BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_sent_at REAL
);
CREATE INDEX envelope_due ON envelope (last_sent_at, seq, n_readings, created_at);
{{MESSAGE}};
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
"""
_MESSAGE_TABLE = """
CREATE TABLE message (
    id INTEGER PRIMARY KEY,
    topic_suffix TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    last_sent_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    key TEXT NOT NULL UNIQUE
)
"""
_SCHEMA = _SCHEMA.replace("{MESSAGE}", _MESSAGE_TABLE.strip())
#: A message's topic below the node's level: plain levels, no wildcards, no empty level.
_TOPIC_SUFFIX = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
#: Bound on a message key, which the cloud's acknowledgement repeats.
_MAX_KEY = 128


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One stored envelope: its seq and its readings, already encoded for the wire.

    >>> OutboxRow(seq=1, created_at=0.0, n_readings=1, readings_json=b"[...]", attempts=0).seq
    1
    """

    seq: int
    created_at: float
    n_readings: int
    readings_json: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One stored message other than readings: where it goes, its bytes and its key.

    >>> OutboxMessage(id=1, topic_suffix="consult/request", payload=b"{}", key="4821-7",
    ...               created_at=0.0, attempts=0).topic_suffix
    'consult/request'
    """

    id: int
    topic_suffix: str
    payload: bytes
    key: str
    created_at: float
    attempts: int


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What the outbox holds and has done, as ``machikado edge status`` prints it.

    >>> s = OutboxStats(node="rr-01", stream="ab12cd34", last_seq=3, pending_rows=1,
    ...                 pending_readings=5, oldest_pending_at=100.0, produced=12, sent=12,
    ...                 receipted=7, dropped=0)
    >>> s.to_json(now=130.0)["oldest_pending_age_s"]
    30.0
    """

    node: str
    stream: str
    last_seq: int
    pending_rows: int
    pending_readings: int
    oldest_pending_at: float | None
    produced: int
    sent: int
    receipted: int
    dropped: int

    def to_json(self, now: float) -> dict[str, object]:
        """The fields as a JSON-ready dict, plus ``oldest_pending_age_s`` as of ``now``."""
        out: dict[str, object] = asdict(self)
        out["oldest_pending_age_s"] = (
            None if self.oldest_pending_at is None else max(0.0, now - self.oldest_pending_at)
        )
        return out


def _sqlite_uri(path: Path, mode: Literal["ro", "rwc"]) -> str:
    return f"file:{quote(str(path))}?mode={mode}"


def _connect(path: Path, mode: Literal["ro", "rwc"]) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            _sqlite_uri(path, mode),
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
    return conn


def _identify(conn: sqlite3.Connection, path: Path) -> bool:
    """Check that ``conn`` is an outbox this code can use; False if the file is still empty."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        n_objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise OutboxError(f"{path} is not a machikado outbox (not an SQLite file: {exc})") from exc
    if app_id == 0 and version == 0 and n_objects == 0:
        return False
    if app_id != APPLICATION_ID:
        raise OutboxError(
            f"{path} is an SQLite file but not a machikado outbox "
            f"(application_id {app_id:#x}, expected {APPLICATION_ID:#x})"
        )
    if version != SCHEMA_VERSION and version not in _UPGRADABLE:
        raise OutboxError(
            f"outbox {path} has schema version {version}; this software reads version "
            f"{SCHEMA_VERSION}"
        )
    return True


_STATS_SQL = """
SELECT node, stream, last_seq, produced, sent, receipted, dropped,
       (SELECT count(*) FROM envelope),
       (SELECT coalesce(sum(n_readings), 0) FROM envelope INDEXED BY envelope_due),
       (SELECT created_at FROM envelope ORDER BY seq LIMIT 1)
FROM outbox WHERE id = 1
"""


def _query_stats(conn: sqlite3.Connection, path: Path, *, extra_dropped: int = 0) -> OutboxStats:
    row = conn.execute(_STATS_SQL).fetchone()
    if row is None:
        raise OutboxError(f"outbox {path} is damaged: its state row is missing")
    node, stream, last_seq, produced, sent, receipted, dropped, rows, readings, oldest = row
    return OutboxStats(
        node=node,
        stream=stream,
        last_seq=last_seq,
        pending_rows=rows,
        pending_readings=readings,
        oldest_pending_at=oldest,
        produced=produced,
        sent=sent,
        receipted=receipted,
        dropped=dropped + extra_dropped,
    )


def _seal(encoded: Sequence[bytes], per_envelope: int) -> list[list[bytes]]:
    """Group encoded readings into envelopes: at most ``per_envelope`` each, and within the
    payload bound (a reading larger than the bound alone still gets an envelope of its own)."""
    envelopes: list[list[bytes]] = []
    current: list[bytes] = []
    size = 2  # the brackets
    for item in encoded:
        grown = size + len(item) + (1 if current else 0)
        if current and (len(current) >= per_envelope or grown > MAX_READINGS_BYTES):
            envelopes.append(current)
            current, grown = [], 2 + len(item)
        current.append(item)
        size = grown
    if current:
        envelopes.append(current)
    return envelopes


class Outbox:
    """The node's durable queue of readings between the sensor agents and the MQTT link.

    Example (the runtime does the same, from its commit timer and its link)::

        with Outbox(Path("/var/lib/machikado/outbox.sqlite"), node="rr-01") as outbox:
            outbox.append(Reading(m="visit", at=datetime.now(UTC), fields={"duration_s": 3.5}))
            outbox.commit()                                   # [1]: durable from here on
            rows = outbox.due(now=time.time(), resend_after=30, limit_readings=500)
            outbox.mark_sent([row.seq for row in rows])       # published on .../data
            outbox.receipt(outbox.stream, [(1, 1)])           # the cloud stored seq 1
    """

    def __init__(
        self,
        path: Path,
        *,
        node: str,
        readings_per_envelope: int = 100,
        max_readings: int = 1_000_000,
        when_full: WhenFull = "drop_oldest",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= readings_per_envelope <= DEFAULT_LIMITS.max_readings:
            raise OutboxError(
                f"readings_per_envelope is {readings_per_envelope}; it must be 1 to "
                f"{DEFAULT_LIMITS.max_readings} (the wire contract's limit)"
            )
        if not NODE_ID.fullmatch(node):
            raise OutboxError(f"node id {node!r} must match {NODE_ID.pattern}")
        if max_readings < 1:
            raise OutboxError(f"max_readings is {max_readings}; it must be at least 1")
        if when_full not in get_args(WhenFull):
            raise OutboxError(
                f"when_full is {when_full!r}; it must be one of {', '.join(get_args(WhenFull))}"
            )
        self.path = Path(path)
        self.node = node
        self.readings_per_envelope = readings_per_envelope
        self.max_readings = max_readings
        self.when_full: WhenFull = when_full
        self._clock = clock
        # _db guards the connection; _mem guards the buffer and the in-memory counts that
        # append() reads. Order: _db before _mem, and append() takes only _mem, so it never
        # waits for disk.
        self._db = threading.Lock()
        self._mem = threading.Lock()
        self._buffer: list[bytes] = []
        self._in_flight = 0  # readings taken from the buffer by a commit not yet finished
        self._refused = 0  # refused readings not yet counted in the database
        self._closed = False
        try:
            # Private: readings may say who was where (machikado.files).
            make_private_dirs(self.path.parent)
            create_private_file(self.path)
        except OSError as exc:
            raise OutboxError(f"cannot create outbox {self.path}: {exc}") from exc
        self._conn = _connect(self.path, "rwc")
        try:
            self._stream, self._held = self._open()
            # Kept in memory so a node with no messages pays no query per send tick.
            self._messages_held: int = self._conn.execute(
                "SELECT count(*) FROM message"
            ).fetchone()[0]
        except BaseException:
            self._conn.close()
            raise
        log.info(
            "outbox_opened",
            node=self.node,
            stream=self._stream,
            path=str(self.path),
            held=self._held,
        )

    def _open(self) -> tuple[str, int]:
        conn, path = self._conn, self.path
        # Identify before switching to WAL, so a foreign file is refused without being changed.
        exists = _identify(conn, path)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise OutboxError(f"outbox {path} cannot use WAL mode (SQLite says {mode!r})")
            conn.execute("PRAGMA synchronous = FULL")
            # A checkpoint empties the WAL but keeps the file's size; bound what stays on disk.
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            if not exists:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    # Another process may have created it between the check and the lock.
                    if not _identify(conn, path):
                        self._create(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            if conn.execute("PRAGMA user_version").fetchone()[0] in _UPGRADABLE:
                self._upgrade(conn)
            row = conn.execute("SELECT node, stream FROM outbox WHERE id = 1").fetchone()
            held = conn.execute(
                "SELECT coalesce(sum(n_readings), 0) FROM envelope INDEXED BY envelope_due"
            ).fetchone()[0]
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {path} cannot be read: {exc}") from exc
        if row is None:
            raise OutboxError(f"outbox {path} is damaged: its state row is missing")
        stored_node, stream = row
        if stored_node != self.node:
            raise OutboxError(
                f"outbox {path} belongs to node {stored_node!r}, not {self.node!r}; "
                f"move it away to start a new stream for {self.node!r}"
            )
        return str(stream), int(held)

    def _create(self, conn: sqlite3.Connection) -> None:
        stream = uuid.uuid4().hex
        # executescript would COMMIT the open transaction first; run the statements one by one
        # so the schema and the stream appear together or not at all.
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT INTO outbox (id, node, stream, created_at, last_seq, produced, sent, "
            "receipted, dropped) VALUES (1, ?, ?, ?, 0, 0, 0, 0, 0)",
            (self.node, stream, self._clock()),
        )
        log.info("outbox_created", node=self.node, stream=stream, path=str(self.path))

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        """Bring a version 1 file to version 2: add the message table, touch nothing else."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] in _UPGRADABLE:
                conn.execute(_MESSAGE_TABLE)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("outbox_upgraded", node=self.node, path=str(self.path), to=SCHEMA_VERSION)

    @property
    def stream(self) -> str:
        """This outbox's stream id (uuid4 hex), made together with the file."""
        return self._stream

    @property
    def buffered(self) -> int:
        """Readings appended but not yet committed."""
        with self._mem:
            return len(self._buffer) + self._in_flight

    def append(self, reading: Reading) -> None:
        """Buffer one reading in memory until the next :meth:`commit`; cheap and thread-safe.

        With ``when_full="refuse"`` this raises :class:`~edge.errors.OutboxFull` once the
        readings held plus buffered reach ``max_readings``.
        """
        if not isinstance(reading, Reading):
            raise TypeError(f"append takes a protocol.Reading, not {type(reading).__name__}")
        encoded = reading.model_dump_json().encode()
        with self._mem:
            self._check_open()
            if self.when_full == "refuse" and (
                self._held + self._in_flight + len(self._buffer) >= self.max_readings
            ):
                self._refused += 1
                refused = True
            else:
                self._buffer.append(encoded)
                refused = False
        if refused:
            log.warning(
                "outbox_full_refused",
                node=self.node,
                stream=self._stream,
                count=1,
                max_readings=self.max_readings,
            )
            raise OutboxFull(
                f"outbox {self.path} holds its maximum of {self.max_readings} readings "
                f"(when_full=refuse); reading {reading.m!r} at {reading.at.isoformat()} refused"
            )

    def extend(self, readings: Iterable[Reading]) -> None:
        """Append each of ``readings``, in order."""
        for reading in readings:
            self.append(reading)

    def commit(self) -> list[int]:
        """Seal the buffered readings into envelopes and store them durably; return their seqs.

        One transaction, fsync'd before this returns. Applies ``max_readings`` with the
        ``when_full`` policy; dropped readings are counted and logged.
        """
        with self._db:
            self._check_open()
            with self._mem:
                batch, self._buffer = self._buffer, []
                self._in_flight = len(batch)
                refused, self._refused = self._refused, 0
            if not batch and not refused:
                with self._mem:
                    self._in_flight = 0
                return []
            try:
                seqs, held = self._store(batch, refused)
            except BaseException:
                with self._mem:
                    self._buffer[:0] = batch
                    self._in_flight = 0
                    self._refused += refused
                raise
            with self._mem:
                self._held = held
                self._in_flight = 0
            return seqs

    def _store(self, batch: list[bytes], refused: int) -> tuple[list[int], int]:
        """Write ``batch`` in one transaction; return the new seqs and the readings now held."""
        bound, held = self.max_readings, self._held
        fresh, too_many = batch, 0
        if self.when_full == "drop_oldest":
            if len(fresh) > bound:
                too_many = len(fresh) - bound
                fresh = fresh[too_many:]  # the newest of the batch are what a reader wants
        else:  # drop_newest; refuse only gets here if the bound shrank since the file was made
            room = max(0, bound - held)
            if len(fresh) > room:
                too_many = len(fresh) - room
                fresh = fresh[:room]
        envelopes = _seal(fresh, self.readings_per_envelope)
        now = self._clock()
        conn = self._conn
        with self._transaction("commit readings", synchronous="FULL"):
            old_dropped, old_seqs = 0, (0, 0)
            if self.when_full == "drop_oldest" and held + len(fresh) > bound:
                old_dropped, old_seqs = self._drop_oldest(held + len(fresh) - bound)
            last_seq: int = conn.execute("SELECT last_seq FROM outbox WHERE id = 1").fetchone()[0]
            seqs = list(range(last_seq + 1, last_seq + 1 + len(envelopes)))
            conn.executemany(
                "INSERT INTO envelope (seq, created_at, n_readings, readings_json) "
                "VALUES (?, ?, ?, ?)",
                [
                    (seq, now, len(env), b"[" + b",".join(env) + b"]")
                    for seq, env in zip(seqs, envelopes, strict=True)
                ],
            )
            conn.execute(
                "UPDATE outbox SET last_seq = ?, produced = produced + ?, "
                "dropped = dropped + ? WHERE id = 1",
                (last_seq + len(seqs), len(fresh), too_many + old_dropped + refused),
            )
        if too_many:
            log.warning(
                "outbox_full_dropped_newest"
                if self.when_full != "drop_oldest"
                else "outbox_full_dropped_batch_oldest",
                node=self.node,
                stream=self._stream,
                count=too_many,
                max_readings=bound,
            )
        if old_dropped:
            log.warning(
                "outbox_full_dropped_oldest",
                node=self.node,
                stream=self._stream,
                count=old_dropped,
                seqs=f"{old_seqs[0]}-{old_seqs[1]}",
                max_readings=bound,
            )
        log.debug(
            "outbox_committed",
            node=self.node,
            stream=self._stream,
            seqs=f"{seqs[0]}-{seqs[-1]}" if seqs else "",
            count=len(fresh),
        )
        return seqs, held - old_dropped + len(fresh)

    def _drop_oldest(self, need: int) -> tuple[int, tuple[int, int]]:
        """Delete the oldest rows until ``need`` readings are gone; return (readings, seqs)."""
        dropped, first, last = 0, 0, 0
        cursor = self._conn.execute("SELECT seq, n_readings FROM envelope ORDER BY seq")
        for seq, n in cursor:
            first = first or seq
            dropped += n
            last = seq
            if dropped >= need:
                break
        cursor.close()
        if last:
            self._conn.execute("DELETE FROM envelope WHERE seq <= ?", (last,))
        return dropped, (first, last)

    def due(
        self,
        *,
        now: float,
        resend_after: float,
        limit_readings: int,
        created_since: float | None = None,
        created_before: float | None = None,
    ) -> list[OutboxRow]:
        """Rows to send now, oldest seq first: never handed out, or handed out more than
        ``resend_after`` seconds before ``now``.

        At most ``limit_readings`` readings, but at least one row if any is due. The window
        keeps only rows with ``created_since <= created_at < created_before``.
        """
        window, args = "", []
        if created_since is not None:
            window += " AND created_at >= ?"
            args.append(created_since)
        if created_before is not None:
            window += " AND created_at < ?"
            args.append(created_before)
        rows_cap = max(1, limit_readings)
        # Two queries that each read one range of the index, rather than one OR that SQLite
        # would answer by scanning the table in seq order.
        never_sent = (
            "SELECT seq, n_readings FROM envelope INDEXED BY envelope_due "
            f"WHERE last_sent_at IS NULL{window} ORDER BY seq LIMIT ?"
        )
        stale = (
            "SELECT seq, n_readings FROM envelope INDEXED BY envelope_due "
            f"WHERE last_sent_at IS NOT NULL AND last_sent_at < ?{window} ORDER BY seq LIMIT ?"
        )
        with self._db:
            self._check_open()
            with self._reading("choose due rows"):
                candidates = self._conn.execute(never_sent, (*args, rows_cap)).fetchall()
                candidates += self._conn.execute(
                    stale, (now - resend_after, *args, rows_cap)
                ).fetchall()
                candidates.sort()
                chosen: list[int] = []
                total = 0
                for seq, n in candidates:
                    if chosen and total + n > limit_readings:
                        break
                    chosen.append(seq)
                    total += n
                rows: list[OutboxRow] = []
                for i in range(0, len(chosen), _CHUNK):
                    part = chosen[i : i + _CHUNK]
                    marks = ",".join("?" * len(part))
                    rows += (
                        OutboxRow(*r)
                        for r in self._conn.execute(
                            "SELECT seq, created_at, n_readings, readings_json, attempts "
                            f"FROM envelope WHERE seq IN ({marks}) ORDER BY seq",
                            part,
                        )
                    )
        return rows

    def mark_sent(self, seqs: Sequence[int]) -> None:
        """Record that these rows were handed to the link now: attempts and ``sent`` go up."""
        unique = list(dict.fromkeys(seqs))
        if not unique:
            return
        with self._db:
            self._check_open()
            now = self._clock()
            readings = 0
            with self._transaction("mark rows sent", synchronous="NORMAL"):
                for seq in unique:
                    row = self._conn.execute(
                        "UPDATE envelope SET last_sent_at = ?, attempts = attempts + 1 "
                        "WHERE seq = ? RETURNING n_readings",
                        (now, seq),
                    ).fetchone()
                    if row is not None:
                        readings += row[0]
                self._conn.execute("UPDATE outbox SET sent = sent + ? WHERE id = 1", (readings,))

    def forget_sent(self) -> None:
        """Make every held row and message due again now, as after a reconnect (attempts are
        kept)."""
        with self._db:
            self._check_open()
            with self._transaction("forget hand-outs", synchronous="NORMAL"):
                self._conn.execute(
                    "UPDATE envelope SET last_sent_at = NULL WHERE last_sent_at IS NOT NULL"
                )
                self._conn.execute(
                    "UPDATE message SET last_sent_at = NULL WHERE last_sent_at IS NOT NULL"
                )

    # --------------------------------------------------------------- messages
    def put_message(self, topic_suffix: str, payload: bytes, *, key: str) -> int:
        """Store a message durably (fsync'd before this returns) until :meth:`ack_message`
        names ``key``; return its id. ``topic_suffix`` is the topic below the node's level."""
        if not _TOPIC_SUFFIX.fullmatch(topic_suffix):
            raise OutboxError(
                f"message topic suffix {topic_suffix!r} must be levels of letters, digits, "
                "'_' or '-' joined by '/', such as 'consult/request'"
            )
        if not key or len(key) > _MAX_KEY or CONTROL_CHARS.search(key):
            raise OutboxError(
                f"message key {key!r} must be 1 to {_MAX_KEY} characters without control characters"
            )
        if len(payload) > DEFAULT_LIMITS.max_payload_bytes:
            raise OutboxError(
                f"message of {len(payload)} bytes for {topic_suffix!r} is larger than the wire "
                f"contract's {DEFAULT_LIMITS.max_payload_bytes}"
            )
        with self._db:
            self._check_open()
            try:
                with self._transaction("store a message", synchronous="FULL"):
                    row = self._conn.execute(
                        "INSERT INTO message (topic_suffix, payload, created_at, key) "
                        "VALUES (?, ?, ?, ?) RETURNING id",
                        (topic_suffix, bytes(payload), self._clock(), key),
                    ).fetchone()
                self._messages_held += 1
            except OutboxError as exc:
                if isinstance(exc.__cause__, sqlite3.IntegrityError):
                    raise OutboxError(
                        f"outbox {self.path} already holds a message with key {key!r}"
                    ) from None
                raise
        log.debug("outbox_message_stored", node=self.node, topic_suffix=topic_suffix)
        return int(row[0])

    def due_messages(self, *, now: float, resend_after: float, limit: int) -> list[OutboxMessage]:
        """Messages to send now, oldest first: never handed out, or handed out more than
        ``resend_after`` seconds before ``now``; at most ``limit``."""
        if limit <= 0 or not self._messages_held:
            return []
        with self._db:
            self._check_open()
            with self._reading("choose due messages"):
                rows = self._conn.execute(
                    "SELECT id, topic_suffix, payload, key, created_at, attempts FROM message "
                    "WHERE last_sent_at IS NULL OR last_sent_at < ? ORDER BY id LIMIT ?",
                    (now - resend_after, limit),
                ).fetchall()
        return [OutboxMessage(i, t, bytes(p), k, c, a) for i, t, p, k, c, a in rows]

    def mark_messages_sent(self, ids: Sequence[int]) -> None:
        """Record that these messages were handed to the link now."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return
        with self._db:
            self._check_open()
            now = self._clock()
            with self._transaction("mark messages sent", synchronous="NORMAL"):
                self._conn.executemany(
                    "UPDATE message SET last_sent_at = ?, attempts = attempts + 1 WHERE id = ?",
                    [(now, i) for i in unique],
                )

    def ack_message(self, key: str) -> bool:
        """Delete the message the cloud acknowledged under ``key``; False if none is held."""
        with self._db:
            self._check_open()
            with self._transaction("apply a message acknowledgement", synchronous="NORMAL"):
                gone = self._conn.execute(
                    "DELETE FROM message WHERE key = ? RETURNING id", (key,)
                ).fetchall()
            self._messages_held -= len(gone)
        log.debug("outbox_message_acked", node=self.node, found=bool(gone))
        return bool(gone)

    def drop_messages(self, *, topic_suffix: str, created_before: float) -> list[str]:
        """Delete the messages on ``topic_suffix`` stored before ``created_before`` (Unix
        seconds, the outbox's clock): they ran out and are sent no more. Their keys, oldest
        first."""
        if not self._messages_held:
            return []
        with self._db:
            self._check_open()
            with self._transaction("drop messages that ran out", synchronous="NORMAL"):
                gone = self._conn.execute(
                    "DELETE FROM message WHERE topic_suffix = ? AND created_at < ? "
                    "RETURNING id, key",
                    (topic_suffix, created_before),
                ).fetchall()
            self._messages_held -= len(gone)
        if gone:
            log.info(
                "outbox_messages_dropped",
                node=self.node,
                topic_suffix=topic_suffix,
                count=len(gone),
            )
        return [key for _id, key in sorted(gone)]

    def message_keys(self) -> list[str]:
        """The keys of the messages held, oldest first."""
        with self._db:
            self._check_open()
            with self._reading("list messages"):
                rows = self._conn.execute("SELECT key FROM message ORDER BY id").fetchall()
        return [k for (k,) in rows]

    def receipt(self, stream: str, ranges: Sequence[tuple[int, int]]) -> int:
        """Delete the rows of our stream that the inclusive seq ``ranges`` cover; return how
        many readings went. A receipt for another stream (an old outbox's) is logged and
        ignored."""
        if stream != self._stream:
            log.warning(
                "outbox_receipt_other_stream",
                node=self.node,
                stream=self._stream,
                receipt_stream=stream,
            )
            return 0
        for lo, hi in ranges:
            # Bounded like a seq: SQLite cannot bind an integer beyond 64 bits at all.
            if not 1 <= lo <= hi <= INT64_MAX:
                raise OutboxError(
                    f"receipt range [{lo}, {hi}] is not 1 <= low <= high <= {INT64_MAX}"
                )
        removed = rows = 0
        with self._db:
            self._check_open()
            with self._transaction("apply receipt", synchronous="NORMAL"):
                for lo, hi in ranges:
                    gone = self._conn.execute(
                        "DELETE FROM envelope WHERE seq BETWEEN ? AND ? RETURNING n_readings",
                        (lo, hi),
                    ).fetchall()
                    rows += len(gone)
                    removed += sum(n for (n,) in gone)
                if removed:
                    self._conn.execute(
                        "UPDATE outbox SET receipted = receipted + ? WHERE id = 1", (removed,)
                    )
            with self._mem:
                self._held -= removed
        log.debug("outbox_receipted", node=self.node, stream=self._stream, rows=rows, count=removed)
        return removed

    def stats(self) -> OutboxStats:
        """What this outbox holds and has done (refusals not yet committed included)."""
        with self._db:
            self._check_open()
            with self._mem:
                refused = self._refused
            with self._reading("read stats"):
                return _query_stats(self._conn, self.path, extra_dropped=refused)

    @classmethod
    def read_stats(cls, path: Path) -> OutboxStats:
        """Read an outbox's stats without changing it, e.g. while its agent runs."""
        path = Path(path)
        if not path.is_file():
            raise OutboxError(f"there is no outbox at {path}")
        conn = _connect(path, "ro")
        try:
            if not _identify(conn, path):
                raise OutboxError(f"{path} is an empty SQLite file, not a machikado outbox")
            return _query_stats(conn, path)
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {path} cannot be read: {exc}") from exc
        finally:
            conn.close()

    def close(self) -> None:
        """Commit what is buffered, then close the file; calling it again does nothing."""
        if self._closed:
            return
        try:
            self.commit()
        finally:
            with self._db, self._mem:
                self._closed = True
                self._conn.close()
            log.info("outbox_closed", node=self.node, stream=self._stream)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError(f"outbox {self.path} is closed")

    @contextmanager
    def _transaction(self, what: str, *, synchronous: Literal["FULL", "NORMAL"]) -> Iterator[None]:
        conn = self._conn
        try:
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: cannot {what}: {exc}") from exc
        try:
            yield
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise OutboxError(f"outbox {self.path}: cannot {what}: {exc}") from exc
            raise

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: cannot {what}: {exc}") from exc
