"""Outbox appends per second on this machine's disk: coalesced commits against one per reading.

The runtime commits every ``commit_window_ms`` (200 ms) of appends, and the link's envelopes
hold up to 100 readings, so a commit (one fsync) carries many readings. The reference is the
naive outbox that fsyncs every reading on its own. Run alone with ``python -m bench.bench_outbox``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from bench.common import Row
from edge.outbox import Outbox
from protocol.messages import Reading

#: Readings appended with coalesced commits, and with a commit per reading (fsyncs are slow).
COALESCED_COUNT = 20_000
PER_READING_COUNT = 2_000
#: What the runtime does by default: commit every 200 ms, and envelopes of 100 readings.
COMMIT_WINDOW_S = 0.2
COMMIT_EVERY = 100


def _readings(n: int) -> list[Reading]:
    # Built before the clock starts: the figure is the outbox's, not pydantic's validation.
    base = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    return [
        Reading(
            m="visit",
            at=base + timedelta(milliseconds=i),
            sensor="stall-1",
            tags={"stall": "1"},
            fields={"duration_s": 180.5 + i % 60, "occupied": i % 2 == 0},
        )
        for i in range(n)
    ]


def coalesced_rate(path: Path, count: int = COALESCED_COUNT) -> float:
    """Readings per second appended and committed the way the runtime does it."""
    readings = _readings(count)
    with Outbox(path, node="bench-01") as outbox:
        start = last_commit = time.perf_counter()
        since_commit = 0
        for reading in readings:
            outbox.append(reading)
            since_commit += 1
            now = time.perf_counter()
            if since_commit >= COMMIT_EVERY or now - last_commit >= COMMIT_WINDOW_S:
                outbox.commit()
                since_commit, last_commit = 0, now
        outbox.commit()
        elapsed = time.perf_counter() - start
    return count / elapsed


def per_reading_rate(path: Path, count: int = PER_READING_COUNT) -> float:
    """Readings per second when every reading is committed (and fsync'd) on its own."""
    readings = _readings(count)
    with Outbox(path, node="bench-01") as outbox:
        start = time.perf_counter()
        for reading in readings:
            outbox.append(reading)
            outbox.commit()
        elapsed = time.perf_counter() - start
    return count / elapsed


def run(tmp_dir: Path) -> list[Row]:
    """Measure both ways in ``tmp_dir`` (put it on the disk the outbox will live on)."""
    quiet = not structlog.is_configured()
    if quiet:
        # Unconfigured structlog prints every commit's debug line, which would be measured too.
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        ours = coalesced_rate(tmp_dir / "outbox-coalesced.sqlite")
        reference = per_reading_rate(tmp_dir / "outbox-per-reading.sqlite")
    finally:
        if quiet:
            structlog.reset_defaults()
    return [
        Row(
            name="outbox appends/s",
            ours=ours,
            unit="readings/s",
            reference=reference,
            reference_label="a commit (fsync) per reading",
            higher_is_better=True,
            target=">= 1,000/s to drain a backlog; a node makes ~10/s",
        )
    ]


def main() -> None:
    """Run the benchmark in a temporary directory and print its rows."""
    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        rows = run(Path(tmp))
    table = Table(title="outbox")
    for column in ("figure", "ours", "reference", "ratio", "target"):
        table.add_column(column)
    for row in rows:
        ratio = row.ratio
        table.add_row(
            row.name,
            f"{row.ours:,.0f} {row.unit}",
            f"{row.reference:,.0f} ({row.reference_label})" if row.reference is not None else "",
            f"{ratio:.1f}x" if ratio is not None else "",
            row.target,
        )
    Console().print(table)


if __name__ == "__main__":
    main()
