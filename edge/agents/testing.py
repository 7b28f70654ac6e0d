"""Helpers for testing agents without a runtime: a recording ``emit`` and a manual clock.

>>> from datetime import UTC, datetime, timedelta
>>> clock = ManualClock(datetime(2026, 11, 26, 7, 0, tzinfo=UTC))
>>> clock.advance(90).isoformat()
'2026-11-26T07:01:30+00:00'
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from protocol.messages import Reading


class RecordingEmit:
    """An ``Emit`` that keeps every reading, and whether it was urgent, for assertions.

    >>> from datetime import UTC, datetime
    >>> emit = RecordingEmit()
    >>> emit(Reading(m="x", at=datetime.now(UTC), fields={"v": 1}), urgent=True)
    >>> emit.of("x")[0].fields, emit.urgent
    ({'v': 1}, [True])
    """

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.urgent: list[bool] = []
        self.threads: set[int] = set()

    def __call__(self, reading: Reading, *, urgent: bool = False) -> None:
        self.readings.append(reading)
        self.urgent.append(urgent)
        self.threads.add(threading.get_ident())

    def of(self, m: str) -> list[Reading]:
        """The readings of measurement ``m``, in the order emitted."""
        return [r for r in self.readings if r.m == m]


class ManualClock:
    """A clock that moves only when told: ``clock()`` is now, ``advance(s)`` moves it on.

    >>> from datetime import UTC, datetime
    >>> ManualClock(datetime(2026, 1, 1, tzinfo=UTC))().year
    2026
    """

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


async def wait_until(
    condition: Callable[[], object], *, within: float = 5.0, poll_s: float = 0.002
) -> None:
    """Wait until ``condition()`` holds, checking every ``poll_s``; TimeoutError after ``within``.

    For conditions no event announces (a reading in a list, a counter reaching a value).
    """
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(poll_s)
