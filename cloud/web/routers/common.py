"""What several routers do alike: the fleet as of now, a month or node from the URL, and an
export that is checked, audited and sent."""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from cloud.web.accounts import audit
from cloud.web.deps import Viewer, client_of
from cloud.web.exports import FORMATS, Table, table_response
from cloud.web.settings_store import effective_web
from cloud.web.state import WebState
from cloud.web.views.fleet import NodeStatus, fleet_status
from protocol.limits import NODE_ID

#: A month in a URL: 2000-01 to 2099-12.
MONTH = re.compile(r"^20\d\d-(0[1-9]|1[0-2])$")


def fleet_now(state: WebState, db: Session) -> list[NodeStatus]:
    """Every node's state now, with the thresholds admins set."""
    web = effective_web(state, db)
    return fleet_status(
        state.read_side(),
        state.fleet,
        now=state.clock(),
        stale_after=web.stale_after,
        offline_after=web.offline_after,
        intervals=web.expected_interval_s,
    )


def month_of(value: str | None, state: WebState) -> date:
    """The month a URL names (``2026-03``), or the city's current month; 422 for another."""
    if not value:
        return state.clock().astimezone(ZoneInfo(state.config.web.timezone)).date().replace(day=1)
    if not MONTH.fullmatch(value):
        raise HTTPException(422, f"month {value!r} must be YYYY-MM from 2000 on, e.g. 2026-03")
    return date(int(value[:4]), int(value[5:]), 1)


def node_of(node: str | None) -> str | None:
    """A node id from the URL (None when not given); 422 for one that cannot be a node."""
    if node in (None, ""):
        return None
    if not NODE_ID.fullmatch(node):
        raise HTTPException(422, f"node {node!r} must match {NODE_ID.pattern}")
    return node


def check_format(fmt: str) -> str:
    """``fmt`` if the tables are exported in it, else 404 naming the ones they are."""
    if fmt not in FORMATS:
        raise HTTPException(404, f"no export as .{fmt}: use .csv, .excel.csv or .json")
    return fmt


def exported(
    request: Request,
    viewer: Viewer,
    db: Session,
    table: Table,
    *,
    fmt: str,
    filename: str,
    target: str,
    **detail: Any,
) -> Response:
    """The table as a download, the export written to the audit log first."""
    assert viewer.user is not None  # every export route requires a login
    audit(
        db,
        actor=viewer.user.username,
        action="export",
        target=target,
        client=client_of(request),
        rows=len(table.rows),
        **detail,
    )
    return table_response(table, fmt=fmt, filename=filename)
