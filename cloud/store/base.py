"""The store interface every backend implements, and the point it stores.

A point is one reading as the store keeps it (DESIGN.md "The store"): measurement ``m``; tags
``node``, ``trial``, ``site``, ``sensor`` and the reading's own tags; its fields; time ``at`` in
nanoseconds since the epoch. Writes are idempotent: a point with the same measurement, tag set
and time as one already stored replaces it, so a resent reading is never counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

FieldValue = bool | int | float | str


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a series.

    >>> Point("visit", {"node": "rr-01"}, {"duration_s": 3.5}, 1_764_140_400_000_000_000).series
    ('visit', (('node', 'rr-01'),))
    """

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ns: int

    @property
    def series(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Measurement and sorted tag set: with ``time_ns``, what makes a point unique."""
        return self.measurement, tuple(sorted(self.tags.items()))


class Store(Protocol):
    """What the collector and the web app need from a store.

    ``write`` returns only when the points are durably stored; it raises
    :class:`~cloud.errors.StoreUnavailable` when that cannot be confirmed (the caller keeps the
    points and retries) and :class:`~cloud.errors.PointsRejected` when the store refuses them for
    what they are (the caller dead-letters them).
    """

    name: str

    def write(self, points: Sequence[Point]) -> None: ...

    def ping(self) -> str:
        """Check the store answers; return its version."""
        ...

    def close(self) -> None: ...
