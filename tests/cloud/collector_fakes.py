"""An in-memory store for collector tests: switchable down, refusing chosen points, waitable."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from cloud.errors import PointsRejected, StoreUnavailable
from cloud.store.base import Point

PointKey = tuple[str, tuple[tuple[str, str], ...], int]


class FakeStore:
    """Keeps points by (measurement, tag set, time), so a rewrite replaces, as the real ones do.

    ``down`` makes writes raise StoreUnavailable; ``refuse`` (a predicate) makes a write holding
    such a point raise PointsRejected for it.
    """

    name = "fake"

    def __init__(self) -> None:
        self.points: dict[PointKey, Point] = {}
        self.down = False
        self.refuse: Callable[[Point], str | None] = lambda _p: None
        self.writes = 0
        self.failed_writes = 0
        self._cond = threading.Condition()

    def write(self, points: Sequence[Point]) -> None:
        with self._cond:
            if self.down:
                self.failed_writes += 1
                self._cond.notify_all()
                raise StoreUnavailable("fake store is down")
            reasons = [r for r in (self.refuse(p) for p in points) if r]
            if reasons:
                raise PointsRejected(reasons)
            for p in points:
                self.points[(p.measurement, p.series[1], p.time_ns)] = p
            self.writes += 1
            self._cond.notify_all()

    def ping(self) -> str:
        return "fake"

    def close(self) -> None:
        pass

    # -- for tests ------------------------------------------------------------------------------

    def of(self, measurement: str) -> list[Point]:
        with self._cond:
            return [p for p in self.points.values() if p.measurement == measurement]

    def link_seqs(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        node: str | None = None,
    ) -> dict[tuple[str, str], set[int]]:
        out: dict[tuple[str, str], set[int]] = {}
        for p in self.of("link"):
            if node is None or p.tags["node"] == node:
                seq = p.fields["seq"]
                assert isinstance(seq, int)
                out.setdefault((p.tags["node"], p.tags["stream"]), set()).add(seq)
        return out

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout=timeout)
