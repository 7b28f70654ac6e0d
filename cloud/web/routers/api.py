"""The JSON API under ``/api/v1``, for partners' scripts: read-only, per-client bearer tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cloud.web.deps import ApiDep, StateDep
from cloud.web.views.fleet import fleet_status

router = APIRouter(prefix="/api/v1", tags=["api"])


@router.get("/nodes")
def api_nodes(token: ApiDep, state: StateDep) -> dict[str, Any]:
    """Every node with its state from data, last data time and its last reports."""
    web = state.config.web
    rows = fleet_status(
        state.read_side(),
        state.fleet,
        now=state.clock(),
        stale_after=web.stale_after,
        offline_after=web.offline_after,
        intervals=web.expected_interval_s,
    )
    return {
        "nodes": [
            {
                "node": r.node,
                "kind": r.kind,
                "trial": r.trial,
                "site": r.site,
                "state": r.state,
                "last_seen": r.last_seen.isoformat() if r.last_seen else None,
                "software": r.software,
                "battery_pct": r.battery_pct,
                "outbox_readings": r.outbox_readings,
                "alarms": r.alarms,
            }
            for r in rows
        ]
    }
