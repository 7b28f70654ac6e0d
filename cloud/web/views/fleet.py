"""The fleet: every node, whether it is delivering data, and what its last reports said.

A node's state comes from data, never from its connection: the newest ``link`` point (one per
data message the collector stored; the daily rollups for a node silent for days) against the
interval its kind is expected to report in.
``online`` within ``stale_after`` intervals, ``stale`` within ``offline_after``, then
``offline``; ``never`` when the store holds nothing from it. A node that keeps its MQTT
connection up but sends nothing is therefore stale, then offline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cloud.fleet import Fleet
from cloud.rollup import DAY
from cloud.store.read import LastValue, ReadSide, from_ns

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


#: The recent window asked first; a node not in it is looked up over LOOKBACK.
RECENT = timedelta(days=2)
#: A node silent for longer than RECENT keeps what it last said for this long in memory:
#: while it is silent nothing changes, and a look over 90 days of a big store is not free.
_OLD_TTL_S = 300.0
#: (store id, measurement, fields) -> (when, the store itself, what was found). The store is
#: kept so that its id cannot be reused by another store while the entry lives.
_old: dict[
    tuple[int, str, tuple[str, ...]], tuple[float, object, dict[str, dict[str, LastValue]]]
] = {}
_old_lock = threading.Lock()


def _older(
    store: ReadSide, measurement: str, fields: tuple[str, ...], *, now: datetime
) -> dict[str, dict[str, LastValue]]:
    key = (id(store), measurement, fields)
    with _old_lock:
        hit = _old.get(key)
        if hit is not None and hit[1] is store and time.monotonic() - hit[0] < _OLD_TTL_S:
            return hit[2]
    found = store.last_values(measurement, fields, since=now - LOOKBACK)
    with _old_lock:
        if len(_old) > 256:
            _old.clear()
        _old[key] = (time.monotonic(), store, found)
    return found


def _last(
    store: ReadSide,
    measurement: str,
    fields: tuple[str, ...],
    *,
    now: datetime,
    nodes: set[str],
) -> dict[str, dict[str, LastValue]]:
    """The newest values per node: from the recent window, older ones for nodes not in it."""
    found = store.last_values(measurement, fields, since=now - RECENT)
    if nodes - set(found):
        for node, values in _older(store, measurement, fields, now=now).items():
            found.setdefault(node, values)
    return found


def last_seen(store: ReadSide, *, now: datetime, nodes: set[str]) -> dict[str, datetime]:
    """When each node's newest envelope arrived: the recent window, then the daily rollups
    (or, where there are none, the raw points over LOOKBACK) for nodes silent since."""
    seen = {r.key: r.at for r in store.latest("link", by="node", since=now - RECENT) if r.key}
    if nodes - set(seen):
        rolled = _older(store, DAY, ("last_ns",), now=now)
        for node, values in rolled.items():
            value = values.get("last_ns")
            if node not in seen and value is not None and isinstance(value.value, int):
                seen[node] = from_ns(value.value)
        if not rolled:
            for row in store.latest("link", by="node", since=now - LOOKBACK):
                if row.key:
                    seen.setdefault(row.key, row.at)
    return seen


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
    intervals = {**DEFAULT_INTERVAL_S, **(intervals or {})}
    listed = {n.id for n in fleet.nodes}
    seen = last_seen(store, now=now, nodes=listed)
    software = _last(store, "fleet_state", ("software",), now=now, nodes=listed)
    health = _last(store, "node_health", HEALTH_FIELDS, now=now, nodes=listed)
    battery = _last(
        store,
        "ride",
        ("battery_pct",),
        now=now,
        nodes={n.id for n in fleet.nodes if n.kind == "vehicle"},
    )
    rows: list[NodeStatus] = []
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
