"""The points the collector writes for what nodes send (the store contract of issue 3).

- one point per reading: measurement ``m``; tags ``node``, ``trial``, ``site``, ``sensor`` (when
  set) and the reading's own tags; its fields; time ``at``;
- one ``link`` point per data message delivered: tags ``node``, ``stream``; fields ``seq``,
  ``readings``, ``latency_s`` (receive time - ``sent_at``); time ``sent_at`` (see
  :func:`link_time_ns`). A resend has a new
  ``sent_at`` and is a point of its own; a broker redelivery of the same copy is the same point;
- ``fleet_state`` points: tags ``node``, ``trial``, ``site``, ``kind``; from a birth the fields
  ``software``, ``stream``, ``config_digest``; from a state ``online``; from data ``stream`` (so
  the newest point says when the node was last seen); time = receive time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from typing import overload

from cloud.fleet import Assignment
from cloud.store import lineprotocol
from cloud.store.base import FieldValue, Point
from protocol.codec import LeanEnvelope
from protocol.messages import Birth, Envelope, Reading

LINK = "link"
FLEET_STATE = "fleet_state"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def time_ns(at: datetime) -> int:
    """Nanoseconds since the epoch, exact to the microsecond (no float on the way).

    >>> time_ns(datetime(2026, 11, 26, 7, 0, 0, 123456, tzinfo=UTC))
    1795676400123456000
    """
    return (at - _EPOCH) // _US * 1000


def link_time_ns(sent_at: datetime, seq: int) -> int:
    """The time of a ``link`` point: ``sent_at``, with ``seq % 1000`` in its nanosecond digits.

    A node sends what is due in one go with one ``sent_at`` for all of it, and a point is
    unique only by series and time: without the seq in the (otherwise always zero) digits below
    the contract's microsecond, the link points of one send would replace each other.

    >>> at = datetime(2026, 1, 1, tzinfo=UTC)
    >>> link_time_ns(at, 1001) - time_ns(at), link_time_ns(at, 7) - time_ns(at)
    (1, 7)
    """
    return time_ns(sent_at) + seq % 1000


def reading_point(
    reading: Reading, *, node: str, where: Assignment, base: dict[str, str] | None = None
) -> Point:
    """One reading as the store keeps it; trial and site from the manifest, not the node.

    ``base`` is ``{"node": node, "trial": ..., "site": ...}`` when the caller has it already.
    """
    tags = base.copy() if base is not None else _base_tags(node, where)
    if reading.sensor is not None:
        tags["sensor"] = reading.sensor
    if reading.tags:
        tags.update(reading.tags)
    return Point(reading.m, tags, dict(reading.fields), time_ns(reading.at))


def _base_tags(node: str, where: Assignment) -> dict[str, str]:
    return {"node": node, "trial": where.trial, "site": where.site}


def envelope_points(env: Envelope, *, where: Assignment, received_at: datetime) -> list[Point]:
    """Every reading of a data envelope, then its ``link`` point."""
    base = _base_tags(env.node, where)
    points = [reading_point(r, node=env.node, where=where, base=base) for r in env.readings]
    latency = (received_at - env.sent_at).total_seconds()
    points.append(
        Point(
            LINK,
            {"node": env.node, "stream": env.stream},
            {"seq": env.seq, "readings": len(env.readings), "latency_s": latency},
            link_time_ns(env.sent_at, env.seq),
        )
    )
    return points


# -- from a lean envelope --------------------------------------------------------------------
#
# The live collector parses envelopes into plain values (protocol.codec.parse_envelope_lean) and
# writes their line protocol straight from them: ``envelope_lines`` is what
# ``encode_points(envelope_points(...))`` gives for the same envelope, without making the
# points; ``EnvelopePoints`` makes them only when asked (isolating a refused batch, another
# store, a replay). tests/cloud/test_lean_points.py holds the two to each other.


class PointsLater(Sequence[Point]):
    """``count`` points, made by ``make`` on first use (a message written as line protocol
    needs its points only if the store refuses the lines, or for a store without them).

    >>> pts = PointsLater(1, lambda: [Point("visit", {}, {"n": 1}, 0)])
    >>> len(pts), pts[0].fields
    (1, {'n': 1})
    """

    __slots__ = ("_count", "_made", "_make")

    def __init__(self, count: int, make: Callable[[], list[Point]]) -> None:
        self._count, self._make = count, make
        self._made: list[Point] | None = None

    def _points(self) -> list[Point]:
        if self._made is None:
            self._made = self._make()
        return self._made

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Point: ...
    @overload
    def __getitem__(self, index: slice) -> list[Point]: ...
    def __getitem__(self, index: int | slice) -> Point | list[Point]:
        return self._points()[index]

    def __iter__(self) -> Iterator[Point]:
        return iter(self._points())


class EnvelopePoints(PointsLater):
    """The points of a lean envelope, made on first use; equal to :func:`envelope_points`.

    >>> from protocol.codec import EXAMPLE, envelope_lean
    >>> where = Assignment(trial="t", site="s", kind="restroom")
    >>> env = envelope_lean(EXAMPLE)
    >>> pts = EnvelopePoints(env, where, datetime(2026, 11, 26, 7, 0, 2, tzinfo=UTC))
    >>> len(pts), pts[-1].fields["latency_s"]
    (2, 1.0)
    """

    __slots__ = ()

    def __init__(self, env: LeanEnvelope, where: Assignment, received_at: datetime) -> None:
        received_us = (received_at - _EPOCH) // _US
        super().__init__(len(env.readings) + 1, partial(lean_points, env, where, received_us))


def lean_points(env: LeanEnvelope, where: Assignment, received_us: int) -> list[Point]:
    """The points of a lean envelope (``received_us``: receive time, µs since the epoch)."""
    base = _base_tags(env.node, where)
    points = []
    for m, at_us, sensor, tags, fields in env.readings:
        point_tags = base.copy()
        if sensor is not None:
            point_tags["sensor"] = sensor
        if tags:
            point_tags.update(tags)
        points.append(Point(m, point_tags, dict(fields), at_us * 1000))
    points.append(_lean_link(env, received_us))
    return points


def _lean_link(env: LeanEnvelope, received_us: int) -> Point:
    return link_point(env.node, env.stream, env.seq, env.sent_at_us, len(env.readings), received_us)


def link_point(
    node: str, stream: str, seq: int, sent_at_us: int, readings: int, received_us: int
) -> Point:
    """The ``link`` point of a data message (times in µs since the epoch)."""
    # int / int is exactly timedelta.total_seconds() (microseconds over 10**6, rounded once).
    latency = (received_us - sent_at_us) / 1_000_000
    return Point(
        LINK,
        {"node": node, "stream": stream},
        {"seq": seq, "readings": readings, "latency_s": latency},
        sent_at_us * 1000 + seq % 1000,
    )


def link_line(link: Point) -> str | None:
    """The line of a ``link`` point, when plainly writable."""
    series = lineprotocol.series_key(
        LINK, (("node", link.tags["node"]), ("stream", link.tags["stream"]))
    )
    return None if series is None else lineprotocol.fast_line(series, link.fields, link.time_ns)


@lru_cache(maxsize=16_384)
def reading_series(
    m: str,
    node: str,
    trial: str,
    site: str,
    sensor: str | None,
    tags: tuple[tuple[str, str], ...],
) -> tuple[str, int] | None:
    """The series key (text, UTF-8 length) of a reading's point, or None if not plainly
    writable; the tag set exactly as lean_points builds it, so both name the same series."""
    point_tags = {"node": node, "trial": trial, "site": site}
    if sensor is not None:
        point_tags["sensor"] = sensor
    point_tags.update(tags)
    return lineprotocol.series_key(m, tuple(point_tags.items()))


def envelope_lines(env: LeanEnvelope, where: Assignment, received_us: int) -> bytes | None:
    """The line protocol of a lean envelope's points, each line ending in a newline; None when
    a point is not plainly writable (then the points go through the store's full checks)."""
    node, trial, site = env.node, where.trial, where.site
    fast_line = lineprotocol.fast_line
    lines = []
    for m, at_us, sensor, tags, fields in env.readings:
        series = reading_series(m, node, trial, site, sensor, tuple(tags.items()))
        if series is None:
            return None
        line = fast_line(series, fields, at_us * 1000)
        if line is None:
            return None
        lines.append(line)
    line = link_line(_lean_link(env, received_us))
    if line is None:
        return None
    lines.append(line)
    lines.append("")
    try:
        return "\n".join(lines).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in a string field: the full checks name it
        return None


def _fleet_tags(node: str, where: Assignment) -> dict[str, str]:
    return {"node": node, "trial": where.trial, "site": where.site, "kind": where.kind}


def fleet_point(
    node: str, where: Assignment, fields: dict[str, FieldValue], received_at: datetime
) -> Point:
    """A ``fleet_state`` point of what a birth, state or data message said about a node."""
    return Point(FLEET_STATE, _fleet_tags(node, where), fields, time_ns(received_at))


def birth_fields(birth: Birth) -> dict[str, FieldValue]:
    return {
        "software": birth.software,
        "stream": birth.stream,
        "config_digest": birth.config_digest,
    }
