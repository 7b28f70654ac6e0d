"""Trip segmentation of a vehicle's wheel movement: a pure state machine, no I/O, no clock.

A trip starts with the first wheel movement and ends when the wheel has not moved for
``idle_s``; its duration runs from the first to the last movement, so the idle wait at the
end is not counted as riding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class TripStarted:
    """The wheel moved after standing still: a trip began at ``at``."""

    at: datetime


@dataclass(frozen=True, slots=True)
class TripEnded:
    """The wheel stood still for the idle time: the trip ended with its last movement."""

    started_at: datetime
    #: The last movement, which is when the trip really ended.
    at: datetime
    distance_m: float

    @property
    def duration_s(self) -> float:
        return max(0.0, (self.at - self.started_at).total_seconds())


class TripTracker:
    """Turns wheel movements and the passing of time into trip starts and ends.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    >>> trips = TripTracker(idle_s=120)
    >>> trips.moved(t0, 2.1)
    TripStarted(at=datetime.datetime(2026, 11, 26, 7, 0, tzinfo=datetime.timezone.utc))
    >>> trips.moved(t0 + timedelta(seconds=60), 500.0) is None
    True
    >>> trips.tick(t0 + timedelta(seconds=179)) is None
    True
    >>> ended = trips.tick(t0 + timedelta(seconds=180))
    >>> ended.distance_m, ended.duration_s
    (502.1, 60.0)
    """

    def __init__(self, idle_s: float) -> None:
        if not idle_s > 0:
            raise ValueError(f"idle_s must be positive, got {idle_s!r}")
        self.idle_s = idle_s
        self._started_at: datetime | None = None
        self._last_moved: datetime | None = None
        self._distance_m = 0.0

    @property
    def active(self) -> bool:
        """Whether a trip is under way."""
        return self._started_at is not None

    @property
    def distance_m(self) -> float:
        """Distance of the trip under way (0 between trips)."""
        return self._distance_m

    @property
    def started_at(self) -> datetime | None:
        return self._started_at

    def moved(self, at: datetime, distance_m: float) -> TripStarted | None:
        """The wheel covered ``distance_m`` up to ``at``; a trip start if this began one.

        A zero or negative distance is no movement (a sensor repeating its last value).
        """
        if not distance_m > 0:
            return None
        started: TripStarted | None = None
        if self._started_at is None:
            self._started_at = at
            self._distance_m = 0.0
            started = TripStarted(at)
        self._distance_m += distance_m
        if self._last_moved is None or at > self._last_moved:
            self._last_moved = at
        return started

    def tick(self, now: datetime) -> TripEnded | None:
        """Time has come to ``now``; the trip's end if the wheel has been idle long enough."""
        if self._started_at is None or self._last_moved is None:
            return None
        if (now - self._last_moved).total_seconds() < self.idle_s:
            return None
        ended = TripEnded(self._started_at, self._last_moved, self._distance_m)
        self._started_at = self._last_moved = None
        self._distance_m = 0.0
        return ended
