"""A synthetic agent: a steady, countable stream of readings for benchmarks and soak tests.

Each reading carries its own running number ``n``, so a test can check that every one produced
reached the other end, and in which envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from datetime import UTC, datetime, timedelta

from edge.agents.base import Emit
from edge.config import SimulationSection
from protocol import Reading


class SyntheticAgent:
    """Emits ``synthetic_rate`` readings per second until ``synthetic_count`` (0: forever).

    >>> # SyntheticAgent(cfg.simulation, emit=runtime.emit) is added by the runtime when
    >>> # simulation.synthetic_rate > 0.
    """

    name = "synthetic"
    sensors: tuple[str, ...] = ("synthetic",)

    def __init__(self, settings: SimulationSection, *, emit: Emit) -> None:
        self.rate = settings.synthetic_rate
        self.count = settings.synthetic_count
        self.emit = emit
        self.produced = 0

    async def run(self, stop: asyncio.Event) -> None:
        start = time.monotonic()
        # Each reading is stamped with its place in the schedule, so no two share a timestamp:
        # the store keeps one point per series and instant, and every reading must count.
        epoch = datetime.now(UTC) - timedelta(seconds=self.produced / self.rate)
        while not stop.is_set() and (self.count == 0 or self.produced < self.count):
            # Catch up to the schedule in one go, so the rate holds however the loop is scheduled.
            due = int((time.monotonic() - start) * self.rate) + 1
            if self.count:
                due = min(due, self.count)
            while self.produced < due:
                self.produced += 1
                n = self.produced
                self.emit(
                    Reading(
                        m="synthetic",
                        at=epoch + timedelta(microseconds=round((n - 1) * 1e6 / self.rate)),
                        sensor="synthetic",
                        fields={"n": n, "value": math.sin(n / 10.0)},
                    )
                )
            next_at = start + self.produced / self.rate
            delay = max(0.0, next_at - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def close(self) -> None:
        """Nothing to release."""
