"""The collector's status file: what it has done and what the store holds, as JSON each second.

A :class:`StatusWriter` runs beside the collector (``[status] path`` in its config) and rewrites
one JSON file atomically (a temp file, then a rename), so a reader such as ``machikado demo``
or a monitoring check never sees half a file. Format (version 1)::

    {"v": 1, "written_at": "2026-11-26T07:00:00.000000+00:00", "pid": 4242, "running": true,
     "store": "sqlite /var/lib/machikado/store.sqlite", "store_error": null,
     "collector": {"connected": true, "subscribed": true, "received": 1200, "stored": 1190,
                   "dead_letters": 0, "messages_per_s": 12.5, ...every collector counter},
     "streams": [{"node": "rr-01", "stream": "4f…", "envelopes": 80, "readings": 160,
                  "first": 1, "last_seq": 80, "missing": 0}],
     "nodes": {"rr-01": {"envelopes": 80, "readings": 160, "last_seq": 80, "missing": 0}}}

``streams`` come from the store's read side, not from the collector's memory: seqs from the
``link`` points, missing ones from :mod:`cloud.completeness` (counted from seq 1, a stream's
whole life), readings as the sum of the ``readings`` field of those points. A resend the store
holds under a second ``sent_at`` counts its readings twice there; ``envelopes`` and ``missing``
are exact. The last file, written after the collector's drain, has ``"running": false``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from cloud.collector.points import LINK
from cloud.completeness import completeness
from cloud.errors import StoreError
from cloud.store.read import ReadSide

log = structlog.get_logger(__name__)

STATUS_VERSION = 1

#: What the collector reports about itself: its counters, ``connected``, ``subscribed``.
Facts = Callable[[], Mapping[str, Any]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stream_status(read_side: ReadSide, *, now: datetime) -> list[dict[str, Any]]:
    """Per node and stream, sorted: envelopes and readings stored, last seq, missing count.

    >>> from cloud.store.sqlite import SqliteStore
    >>> stream_status(SqliteStore(":memory:"), now=datetime.now(UTC))
    []
    """
    seqs = read_side.link_seqs()
    if not seqs:
        return []
    # One bucket from the epoch to a day ahead holds every link point (sent_at may run ahead
    # of our clock by the contract's accepted skew).
    until = now + timedelta(days=1)
    readings: dict[str, int] = {}
    for bucket in read_side.aggregate(
        LINK, "readings", fn="sum", every=until - _EPOCH, by="stream", since=_EPOCH, until=until
    ):
        readings[bucket.group] = readings.get(bucket.group, 0) + int(bucket.value)
    return [
        {
            "node": s.node,
            "stream": s.stream,
            "envelopes": s.received,
            "readings": readings.get(s.stream, 0),
            "first": s.first,
            "last_seq": s.last,
            "missing": s.missing_count,
        }
        for s in completeness(seqs, from_one=True)
    ]


def node_totals(streams: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """The streams of each node added up; ``last_seq`` is the highest of any of its streams.

    >>> node_totals([{"node": "rr-01", "envelopes": 2, "readings": 5, "last_seq": 2, "missing": 1}])
    {'rr-01': {'envelopes': 2, 'readings': 5, 'last_seq': 2, 'missing': 1}}
    """
    nodes: dict[str, dict[str, int]] = {}
    for s in streams:
        n = nodes.setdefault(
            s["node"], {"envelopes": 0, "readings": 0, "last_seq": 0, "missing": 0}
        )
        n["envelopes"] += s["envelopes"]
        n["readings"] += s["readings"]
        n["missing"] += s["missing"]
        n["last_seq"] = max(n["last_seq"], s["last_seq"])
    return nodes


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename, so a reader sees the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class StatusWriter:
    """Writes the collector's status file every ``interval_s`` from a thread of its own.

    It owns ``read_side`` (a store connection of its own, so its queries never wait on the
    collector's writes) and closes it on :meth:`stop`, after one last write.

    >>> # status = StatusWriter(Path("var/cloud/status.json"), open_store(cfg.store),
    >>> #                       store_label="sqlite var/cloud/store.sqlite")
    >>> # status.start(collector.status_facts); ...; status.stop()
    """

    def __init__(
        self,
        path: Path,
        read_side: ReadSide,
        *,
        store_label: str,
        interval_s: float = 1.0,
        close: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.path = path
        self.read_side = read_side
        self.store_label = store_label
        self.interval_s = interval_s
        self.clock = clock
        self._close = close
        self._facts: Facts = dict
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._streams: list[dict[str, Any]] = []
        self._store_error: str | None = None
        self._last: tuple[datetime, int] | None = None
        self._log = log.bind(path=str(path))

    def start(self, facts: Facts) -> None:
        """Write now, then every ``interval_s`` until :meth:`stop`."""
        self._facts = facts
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.write()
        self._thread = threading.Thread(target=self._loop, name="collector-status", daemon=True)
        self._thread.start()
        self._log.info("status_writer_started", interval_s=self.interval_s)

    def stop(self) -> None:
        """Stop the thread, write the last file (``running`` false) and close the read side."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self.write(running=False)
        finally:
            if self._close is not None:
                self._close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.write()

    def write(self, *, running: bool = True) -> dict[str, Any]:
        """Query the store, write the file; what was written. Never raises for the store."""
        now = self.clock()
        try:
            self._streams = stream_status(self.read_side, now=now)
            if self._store_error is not None:
                self._log.info("status_store_readable_again")
            self._store_error = None
        except StoreError as exc:
            # Keep showing the last streams: the collector retries the store on its own.
            if self._store_error is None:
                self._log.warning("status_store_unreadable", error=str(exc))
            self._store_error = str(exc)
        collector = dict(self._facts())
        collector["messages_per_s"] = self._rate(now, int(collector.get("received", 0)))
        status = {
            "v": STATUS_VERSION,
            "written_at": now.isoformat(),
            "pid": os.getpid(),
            "running": running,
            "store": self.store_label,
            "store_error": self._store_error,
            "collector": collector,
            "streams": self._streams,
            "nodes": node_totals(self._streams),
        }
        try:
            write_atomically(self.path, json.dumps(status, indent=1) + "\n")
        except OSError as exc:
            self._log.warning("status_not_written", error=exc.strerror or str(exc))
        return status

    def _rate(self, now: datetime, received: int) -> float:
        last, self._last = self._last, (now, received)
        if last is None:
            return 0.0
        seconds = (now - last[0]).total_seconds()
        return round((received - last[1]) / seconds, 1) if seconds > 0 else 0.0


def read_status(path: Path) -> dict[str, Any] | None:
    """The status file's content, or None while there is none (or it is not JSON)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


__all__ = ["STATUS_VERSION", "StatusWriter", "node_totals", "read_status", "stream_status"]
