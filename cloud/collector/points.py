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

from datetime import UTC, datetime, timedelta

from cloud.fleet import Assignment
from cloud.store.base import FieldValue, Point
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


def reading_point(reading: Reading, *, node: str, where: Assignment) -> Point:
    """One reading as the store keeps it; trial and site from the manifest, not the node."""
    tags = {"node": node, "trial": where.trial, "site": where.site}
    if reading.sensor is not None:
        tags["sensor"] = reading.sensor
    tags.update(reading.tags)
    return Point(reading.m, tags, dict(reading.fields), time_ns(reading.at))


def envelope_points(env: Envelope, *, where: Assignment, received_at: datetime) -> list[Point]:
    """Every reading of a data envelope, then its ``link`` point."""
    points = [reading_point(r, node=env.node, where=where) for r in env.readings]
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
