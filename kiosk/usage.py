"""Kiosk usage as counts per period, small counts suppressed: all the store learns of residents.

A kiosk sees a few residents an hour, so one reading per session would tell anyone who saw
who stood there what that resident was told or looked at. Instead :class:`UsageCounter`
counts finished sessions in memory, per period (``kiosk.usage_period_s``, hourly by default,
aligned to the Unix epoch so hours start on the hour), and only when a period has ended are
its counts made into readings, stamped with the period's start, with every count below
``kiosk.usage_min_count`` (k, default 5) replaced by ``"<k"``.

Shape in the store, measurement ``kiosk_usage``, one reading per (dimension, value) cell::

    tags    dimension   sessions | language | tier | consultation | info_category | display
            value       sessions: "all"; language: the code chosen, or "none"; tier: red,
                        yellow, green, white (the most urgent a session reached); consultation:
                        "requested"; info_category: a content pack ``what`` tag; display:
                        large_text, high_contrast
    fields  count_text  always a string: the count ("12"), "<5" (0 to k-1) or ">=5" (k or more,
                        hidden so that a suppressed neighbour cannot be worked out)
            count       an integer, only when count_text is the exact count
    time    the period's start

Every value a dimension can take (the catalog's languages, the four tiers, the pack's
categories) is sent every period, zeros included, so a ``"<5"`` cell does not even show that
somebody was in it. Counts that add up to another published count could give a suppressed
cell away by subtraction: language cells add up to the sessions, and every consultation
follows a finished interview, so the tiers add up to at least the consultations. Where that
would prove a suppressed cell non-zero, the smallest published cell of the dimension is hidden
too (``">=5"``); if no cell is left to hide, the dimension is left out of that period. Within a
dimension ``count_text`` is always a string and ``count`` always an integer, since InfluxDB 1.x
refuses a field whose type changes within a shard.

Nothing is sent twice for a period and series (the store would keep only the second): a
period's readings are made once, when it has ended. On a clean stop the open period's counts
are saved to a file of mode 0600 (:meth:`UsageCounter.save`) and taken up again at the next
start (:meth:`UsageCounter.restore`), into the same period or, if it has ended meanwhile, sent
then. A power cut loses the counts of the period it falls in, never more.

>>> t = [7 * 3600 + 120.0]
>>> counter = UsageCounter(period_s=3600, k=5, clock=lambda: t[0])
>>> counter.declare("language", ["ja", "vi"])
>>> counter.add(SessionUsage(language="vi", tier="green"))
>>> t[0] += 3600
>>> cells = {(r.tags["dimension"], r.tags["value"]): r.fields for r in counter.closed()}
>>> cells[("tier", "green")], cells[("tier", "red")]
({'count_text': '<5'}, {'count_text': '<5'})
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog

from kiosk.errors import KioskError
from kiosk.session import SessionUsage
from protocol.messages import Reading

log = structlog.get_logger(__name__)

MEASUREMENT = "kiosk_usage"
#: The file beside the outbox that holds an unfinished period's counts over a clean restart.
STATE_FILE = "kiosk-usage.json"
STATE_VERSION = 1
TIERS = ("red", "yellow", "green", "white")
#: Values every period carries, whatever happened; language and info_category are declared by
#: the app (:meth:`UsageCounter.declare`), from its catalog and content pack.
FIXED: dict[str, tuple[str, ...]] = {
    "sessions": ("all",),
    "language": ("none",),
    "tier": TIERS,
    "consultation": ("requested",),
    "info_category": (),
    "display": ("large_text", "high_contrast"),
}
DIMENSIONS = tuple(FIXED)
#: What a value must look like to become a tag (language codes, pack tags); others are "other".
_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class UsageError(KioskError):
    """Usage counts that cannot be kept or restored; says what and why."""


def session_cells(usage: SessionUsage) -> list[tuple[str, str]]:
    """The (dimension, value) cells one finished session counts in, each once.

    >>> session_cells(SessionUsage(language="vi", tier="green", large_text=True))
    [('sessions', 'all'), ('language', 'vi'), ('tier', 'green'), ('display', 'large_text')]
    """
    out = [("sessions", "all"), ("language", _value(usage.language or "none"))]
    if usage.tier is not None:
        if usage.tier not in TIERS:
            raise UsageError(f"session usage: tier {usage.tier!r} is not one of {TIERS}")
        out.append(("tier", usage.tier))
    if usage.consult_requested:
        out.append(("consultation", "requested"))
    out += [("info_category", _value(c)) for c in sorted(usage.info_categories)]
    if usage.large_text:
        out.append(("display", "large_text"))
    if usage.high_contrast:
        out.append(("display", "high_contrast"))
    return list(dict.fromkeys(out))


def _value(text: str) -> str:
    return text if _VALUE.fullmatch(text) else "other"


def suppress(
    counts: Mapping[str, int], *, k: int, sum_at_least: int = 0
) -> dict[str, tuple[str, int | None]] | None:
    """The cells of one dimension as published: value -> (count_text, exact count or None).

    ``sum_at_least`` is what the cells are known to add up to at least (the published sessions
    for language, the published consultations for tier); None means the dimension must be
    left out, since any way of showing it proves a suppressed cell non-zero.

    >>> suppress({"ja": 8, "vi": 1, "none": 0}, k=5, sum_at_least=9)
    {'ja': ('8', 8), 'vi': ('<5', None), 'none': ('<5', None)}
    >>> suppress({"ja": 8, "vi": 1}, k=5, sum_at_least=9)
    {'ja': ('>=5', None), 'vi': ('<5', None)}
    """
    published = {v: n for v, n in counts.items() if n >= k}
    small = [v for v, n in counts.items() if n < k]
    hidden: set[str] = set()
    # The least the suppressed cells must hold together; each can hold k - 1 at most. If the
    # others cannot hold it all, this one holds at least one: someone was in it.
    remaining = sum_at_least - sum(published.values())
    if small and remaining - (len(small) - 1) * (k - 1) >= 1:
        if not published:
            return None
        # A cell shown only as ">=k" has no upper bound, so it can hold any remainder.
        hidden.add(min(published, key=lambda v: (published[v], v)))
    out: dict[str, tuple[str, int | None]] = {}
    for value, n in counts.items():
        if n < k:
            out[value] = (f"<{k}", None)
        elif value in hidden:
            out[value] = (f">={k}", None)
        else:
            out[value] = (str(n), n)
    return out


@dataclass
class _Period:
    start: int
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    declared: dict[str, set[str]] = field(default_factory=dict)


class UsageCounter:
    """Counts of finished sessions per period, handed out as readings once a period ended.

    Thread-safe: the app adds sessions on its thread, the node takes readings on its own.
    ``clock`` gives Unix seconds (``time.time``); tests move it by hand.

    >>> counter = UsageCounter(period_s=3600, k=5, clock=lambda: 3600.0 * 10)
    >>> counter.period_start()
    36000
    """

    def __init__(
        self,
        *,
        period_s: int = 3600,
        k: int = 5,
        clock: Callable[[], float] = time.time,
        state_path: Path | None = None,
    ) -> None:
        if period_s < 1 or 86400 % period_s:
            raise UsageError(f"usage period of {period_s} s does not divide a day evenly")
        if k < 2:
            raise UsageError(f"usage_min_count is {k}; counts below 2 would hide nothing")
        self.period_s = period_s
        self.k = k
        self.state_path = state_path
        self._clock = clock
        self._lock = threading.Lock()
        self._declared: dict[str, set[str]] = {d: set(v) for d, v in FIXED.items()}
        self._open = self._new_period(self.period_start())
        self._closed: list[_Period] = []

    def period_start(self, at: float | None = None) -> int:
        """Unix seconds at which the period holding ``at`` (default: now) began."""
        now = self._clock() if at is None else at
        return int(now // self.period_s) * self.period_s

    def _new_period(self, start: int) -> _Period:
        return _Period(start, declared={d: set(v) for d, v in self._declared.items()})

    def _roll(self) -> None:
        """Close the open period if the clock has left it (the lock is held)."""
        start = self.period_start()
        if start > self._open.start:
            self._closed.append(self._open)
            self._open = self._new_period(start)

    def declare(self, dimension: str, values: Iterable[str]) -> None:
        """Values ``dimension`` can take from now on (the catalog's languages, the pack's
        categories): each is sent every period, counted or not."""
        if dimension not in FIXED:
            raise UsageError(f"no usage dimension {dimension!r} (known: {', '.join(DIMENSIONS)})")
        with self._lock:
            self._roll()
            chosen = {*FIXED[dimension], *(_value(v) for v in values)}
            self._declared[dimension] = chosen
            self._open.declared.setdefault(dimension, set()).update(chosen)

    def add(self, usage: SessionUsage) -> None:
        """Count one finished session into the period it finished in."""
        cells = session_cells(usage)
        with self._lock:
            self._roll()
            self._open.counts.update(cells)

    def closed(self) -> list[Reading]:
        """The readings of every period that has ended and was not handed out yet."""
        with self._lock:
            self._roll()
            periods, self._closed = self._closed, []
        return [r for p in periods for r in self._readings(p)]

    def _readings(self, period: _Period) -> list[Reading]:
        at = datetime.fromtimestamp(period.start, UTC)
        table: dict[str, dict[str, int]] = {d: {} for d in DIMENSIONS}
        for dim, values in period.declared.items():
            table[dim].update(dict.fromkeys(values, 0))
        for (dim, value), n in period.counts.items():
            table.setdefault(dim, {})[value] = n
        sessions = table["sessions"].get("all", 0)
        consults = table["consultation"].get("requested", 0)
        at_least = {
            # Every session is in exactly one language cell ("none" if it chose none) ...
            "language": sessions if sessions >= self.k else 0,
            # ... and every consultation follows a finished interview, so it has a tier.
            "tier": consults if consults >= self.k else 0,
        }
        readings: list[Reading] = []
        for dim in DIMENSIONS:
            cells = suppress(
                dict(sorted(table[dim].items())), k=self.k, sum_at_least=at_least.get(dim, 0)
            )
            if cells is None:
                log.info("kiosk_usage_dimension_withheld", dimension=dim, period=at.isoformat())
                continue
            for value, (text, exact) in cells.items():
                fields: dict[str, str | int] = {"count_text": text}
                if exact is not None:
                    fields["count"] = exact
                readings.append(
                    Reading(
                        m=MEASUREMENT, at=at, tags={"dimension": dim, "value": value}, fields=fields
                    )
                )
        return readings

    # ------------------------------------------------------------ over a restart
    def save(self) -> None:
        """Keep the counts not handed out yet in :attr:`state_path` (mode 0600) for the next
        start; with none to keep, the file is removed."""
        if self.state_path is None:
            return
        with self._lock:
            periods = [*self._closed, self._open]
        kept = [p for p in periods if p.counts]
        if not kept:
            self.state_path.unlink(missing_ok=True)
            return
        state = {
            "v": STATE_VERSION,
            "period_s": self.period_s,
            "periods": [
                {
                    "start": p.start,
                    "counts": [[d, v, n] for (d, v), n in sorted(p.counts.items())],
                    "declared": {d: sorted(v) for d, v in sorted(p.declared.items())},
                }
                for p in kept
            ],
        }
        _write_private(self.state_path, json.dumps(state, separators=(",", ":")).encode())

    def restore(self) -> int:
        """Take up the counts a clean stop saved, then remove the file; the periods restored.

        A period that has ended meanwhile is handed out by the next :meth:`closed`; one saved
        with another period length is too, stamped with its own start.
        """
        path = self.state_path
        if path is None or not path.exists():
            return 0
        try:
            state = json.loads(path.read_bytes())
            if state.get("v") != STATE_VERSION:
                raise ValueError(f"version {state.get('v')!r}, not {STATE_VERSION}")
            same_length = state["period_s"] == self.period_s
            periods = [
                _Period(
                    int(p["start"]),
                    Counter({(str(d), str(v)): int(n) for d, v, n in p["counts"]}),
                    {str(d): {str(x) for x in v} for d, v in p["declared"].items()},
                )
                for p in state["periods"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Losing an hour's counts is better than a kiosk that will not start.
            log.warning("kiosk_usage_state_unreadable", path=str(path), error=str(exc))
            path.unlink(missing_ok=True)
            return 0
        with self._lock:
            self._roll()
            for period in periods:
                # A period not before the open one (the clock may have been set back) joins it.
                if same_length and period.start >= self._open.start:
                    self._open.counts.update(period.counts)
                    for dim, values in period.declared.items():
                        self._open.declared.setdefault(dim, set()).update(values)
                else:
                    self._closed.append(period)
        path.unlink(missing_ok=True)
        return len(periods)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file of the same name may have had another mode
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
