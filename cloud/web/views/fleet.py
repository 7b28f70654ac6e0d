"""The fleet: every node, whether it is delivering data, and what its last reports said.

A node's state comes from data, never from its connection: the newest ``link`` point (one per
data message the collector stored) against the interval its kind is expected to report in.
``online`` within ``stale_after`` intervals, ``stale`` within ``offline_after``, then
``offline``; ``never`` when the store holds nothing from it. A node that keeps its MQTT
connection up but sends nothing is therefore stale, then offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cloud.fleet import Fleet
from cloud.store.read import LastValue, ReadSide

State = Literal["online", "stale", "offline", "never"]
STATES: tuple[State, ...] = ("online", "stale", "offline", "never")

#: Seconds between reports a kind is expected to keep to, at least: every node sends its
#: ``node_health`` each minute by default (``[health] interval_s``).
DEFAULT_INTERVAL_S: dict[str, float] = {
    "restroom": 60.0,
    "vehicle": 60.0,
    "station": 60.0,
    "kiosk": 60.0,
}
#: How far back the fleet page looks for a node's newest data.
LOOKBACK = timedelta(days=90)

HEALTH_FIELDS = (
    "outbox_readings",
    "oldest_pending_age_s",
    "dropped",
    "link_alarms",
    "cpu_temp_c",
    "disk_free_bytes",
)


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One row of the fleet page."""

    node: str
    kind: str
    trial: str
    site: str
    state: State
    last_seen: datetime | None
    expected_interval_s: float
    software: str | None
    battery_pct: float | None
    outbox_readings: int | None
    oldest_pending_age_s: float | None
    dropped: int | None
    alarms: int | None
    in_manifest: bool = True


def state_of(
    last_seen: datetime | None, *, now: datetime, interval_s: float, stale: float, offline: float
) -> State:
    """``online``, ``stale``, ``offline`` or ``never`` for a node last seen at ``last_seen``.

    >>> from datetime import UTC
    >>> now = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    >>> [state_of(now - timedelta(minutes=m), now=now, interval_s=60, stale=3, offline=12)
    ...  for m in (1, 5, 30)]
    ['online', 'stale', 'offline']
    """
    if last_seen is None:
        return "never"
    age = (now - last_seen).total_seconds()
    if age <= stale * interval_s:
        return "online"
    if age <= offline * interval_s:
        return "stale"
    return "offline"


def _number(values: Mapping[str, LastValue], name: str) -> float | None:
    found = values.get(name)
    if found is None or isinstance(found.value, bool | str):
        return None
    return float(found.value)


def _count(values: Mapping[str, LastValue], name: str) -> int | None:
    number = _number(values, name)
    return None if number is None else int(number)


def fleet_status(
    store: ReadSide,
    fleet: Fleet,
    *,
    now: datetime,
    stale_after: float,
    offline_after: float,
    intervals: Mapping[str, float] | None = None,
) -> list[NodeStatus]:
    """Every node of the manifest, and any node the store has data from that it lacks."""
    since = now - LOOKBACK
    intervals = {**DEFAULT_INTERVAL_S, **(intervals or {})}
    seen = {row.key: row.at for row in store.latest("link", by="node", since=since) if row.key}
    software = store.last_values("fleet_state", ("software",), since=since)
    health = store.last_values("node_health", HEALTH_FIELDS, since=since)
    battery = store.last_values("ride", ("battery_pct",), since=since)
    rows: list[NodeStatus] = []
    listed = {n.id for n in fleet.nodes}
    entries: list[tuple[str, str, str, str, bool]] = [
        (n.id, n.kind, n.trial, n.site, True) for n in fleet.nodes
    ]
    entries += [(n, "", "", "", False) for n in sorted(set(seen) - listed)]
    for node, kind, trial, site, in_manifest in entries:
        interval = intervals.get(kind, 60.0)
        h = health.get(node, {})
        soft = software.get(node, {}).get("software")
        rows.append(
            NodeStatus(
                node=node,
                kind=kind,
                trial=trial,
                site=site,
                state=state_of(
                    seen.get(node),
                    now=now,
                    interval_s=interval,
                    stale=stale_after,
                    offline=offline_after,
                ),
                last_seen=seen.get(node),
                expected_interval_s=interval,
                software=str(soft.value) if soft is not None else None,
                battery_pct=_number(battery.get(node, {}), "battery_pct"),
                outbox_readings=_count(h, "outbox_readings"),
                oldest_pending_age_s=_number(h, "oldest_pending_age_s"),
                dropped=_count(h, "dropped"),
                alarms=_count(h, "link_alarms"),
                in_manifest=in_manifest,
            )
        )
    return rows


def state_counts(rows: list[NodeStatus]) -> dict[State, int]:
    """How many nodes are in each state (every state present, 0 when none)."""
    counts: dict[State, int] = dict.fromkeys(STATES, 0)
    for row in rows:
        counts[row.state] += 1
    return counts
