"""One node's page: its state, recent readings, health, link latency, gaps and births."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cloud.fleet import Fleet
from cloud.rollup import days_in, summaries
from cloud.store.read import Bucket, LatestRow, ReadSide
from cloud.web.views.completeness import Gap, Reset, assemble
from cloud.web.views.fleet import NodeStatus, fleet_status

#: What each kind of node measures (besides ``node_health``, which every node sends).
MEASUREMENTS: dict[str, tuple[str, ...]] = {
    "restroom": ("visit", "occupancy", "help_call", "health_check"),
    "vehicle": ("trip", "ride"),
    "station": ("vehicle_arrived", "parked_vehicle", "vehicle_left"),
    "kiosk": ("kiosk_usage",),
}


@dataclass(frozen=True, slots=True)
class NodePage:
    status: NodeStatus
    recent: list[LatestRow]
    health: LatestRow | None
    latency: list[Bucket]
    gaps: list[Gap]
    resets: list[Reset]
    births: list[LatestRow]


def node_page(
    store: ReadSide,
    fleet: Fleet,
    node: str,
    *,
    now: datetime,
    zone: ZoneInfo,
    stale_after: float,
    offline_after: float,
    intervals: dict[str, float] | None = None,
    days: int = 7,
) -> NodePage | None:
    """Everything the node page shows, or None when neither the manifest nor the store knows
    the node."""
    statuses = fleet_status(
        store,
        fleet,
        now=now,
        stale_after=stale_after,
        offline_after=offline_after,
        intervals=intervals,
    )
    status = next((s for s in statuses if s.node == node), None)
    if status is None:
        return None
    since = now - timedelta(days=days)
    recent: list[LatestRow] = []
    for m in MEASUREMENTS.get(status.kind, ()):
        recent += [
            LatestRow(m, r.time_ns, r.tags, r.fields)
            for r in store.points(m, since=since, until=now, node=node, limit=20)
        ]
    recent.sort(key=lambda r: r.time_ns, reverse=True)
    health = store.points("node_health", since=since, until=now, node=node, limit=1)
    latency = [
        b
        for b in store.aggregate(
            "link",
            "latency_s",
            fn="mean",
            every=timedelta(hours=1),
            by="node",
            since=now - timedelta(hours=24),
            until=now,
        )
        if b.group == node
    ]
    parts = summaries(store, since, now, zone, node=node)
    _cells, gaps, resets = assemble(parts, node=node, days=days_in(since, now, zone), zone=zone)
    births = [
        r
        for r in store.points(
            "fleet_state", since=now - timedelta(days=90), until=now, node=node, limit=500
        )
        if "software" in r.fields
    ][:20]
    return NodePage(
        status=status,
        recent=recent[:30],
        health=health[0] if health else None,
        latency=latency,
        gaps=gaps,
        resets=resets,
        births=births,
    )
