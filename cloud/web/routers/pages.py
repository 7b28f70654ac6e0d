"""The pages staff use every day: fleet, node, trials, completeness; each table also as CSV
and JSON at the same address with another extension."""

from __future__ import annotations

import functools
import hashlib
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from cloud.web.accounts import audit
from cloud.web.charts import bar_chart
from cloud.web.deps import DbDep, StateDep, UserDep, client_of
from cloud.web.exports import Column, Table, json_rows
from cloud.web.i18n import gettext_ as _
from cloud.web.render import render
from cloud.web.routers.common import check_format, exported, fleet_now, month_of, node_of
from cloud.web.settings_store import effective_web
from cloud.web.views.completeness import NodeDays, completeness_month
from cloud.web.views.fleet import NodeStatus, state_counts
from cloud.web.views.node import NodePage, node_page
from cloud.web.views.trials import LABELS, FigureData, TrialPage, one_figure, trial_page

router = APIRouter(include_in_schema=False)


def fleet_table(rows: list[NodeStatus]) -> Table:
    columns = [
        Column("node", _("Node")),
        Column("kind", _("Kind")),
        Column("trial", _("Trial")),
        Column("site", _("Site")),
        Column("state", _("State")),
        Column("last_seen", _("Last data")),
        Column("software", _("Software")),
        Column("battery_pct", _("Battery"), "%"),
        Column("outbox_readings", _("Outbox backlog"), _("readings")),
        Column("oldest_pending_age_s", _("Oldest unsent"), "s"),
        Column("alarms", _("Link alarms")),
    ]
    return Table(
        columns,
        [
            {
                "node": r.node,
                "kind": r.kind,
                "trial": r.trial,
                "site": r.site,
                "state": r.state,
                "last_seen": r.last_seen,
                "software": r.software,
                "battery_pct": r.battery_pct,
                "outbox_readings": r.outbox_readings,
                "oldest_pending_age_s": r.oldest_pending_age_s,
                "alarms": r.alarms,
            }
            for r in rows
        ],
    )


@router.get("/")
def fleet_page(request: Request, viewer: UserDep, state: StateDep, db: DbDep) -> Response:
    rows = fleet_now(state, db)
    return render(
        request, "fleet.html", viewer=viewer, rows=rows, counts=state_counts(rows), partial=False
    )


@router.get("/fleet/table")
def fleet_partial(request: Request, viewer: UserDep, state: StateDep, db: DbDep) -> Response:
    """The fleet table alone, for htmx's refresh."""
    rows = fleet_now(state, db)
    return render(request, "_fleet_table.html", viewer=viewer, rows=rows, counts=state_counts(rows))


@router.get("/fleet.{fmt}")
def fleet_export(
    request: Request, fmt: str, viewer: UserDep, state: StateDep, db: DbDep
) -> Response:
    table = fleet_table(fleet_now(state, db))
    return exported(
        request, viewer, db, table, fmt=check_format(fmt), filename="fleet", target=f"fleet.{fmt}"
    )


# ------------------------------------------------------------------------------ completeness


def _completeness(state: StateDep, month: date, node: str | None) -> list[NodeDays]:
    return completeness_month(
        state.read_side(),
        state.fleet,
        month=month,
        zone=ZoneInfo(state.config.web.timezone),
        node=node,
    )


def completeness_table(rows: list[NodeDays]) -> Table:
    columns = [
        Column("node", _("Node")),
        Column("date", _("Date")),
        Column("received", _("Envelopes received")),
        Column("expected", _("Envelopes expected")),
        Column("missing", _("Envelopes missing")),
        Column("ratio_pct", _("Completeness"), "%"),
    ]
    return Table(
        columns,
        [
            {
                "node": r.node,
                "date": d.day,
                "received": d.received,
                "expected": d.expected,
                "missing": d.missing,
                "ratio_pct": None if d.ratio is None else round(100 * d.ratio, 2),
            }
            for r in rows
            for d in r.days
        ],
    )


def _shade(ratio: float | None) -> str:
    if ratio is None:
        return "none"
    if ratio >= 1:
        return "full"
    if ratio >= 0.99:
        return "high"
    if ratio >= 0.9:
        return "mid"
    return "low"


@router.get("/completeness")
def completeness_page(
    request: Request,
    viewer: UserDep,
    state: StateDep,
    month: str | None = None,
    node: str | None = None,
) -> Response:
    chosen = month_of(month, state)
    picked = node_of(node)
    rows = _completeness(state, chosen, picked)
    days = rows[0].days if rows else []
    query = f"?month={chosen:%Y-%m}" + (f"&node={picked}" if picked else "")
    return render(
        request,
        "completeness.html",
        viewer=viewer,
        rows=rows,
        days=days,
        month=chosen,
        node=picked,
        shade=_shade,
        previous=(chosen - timedelta(days=1)).replace(day=1),
        following=(chosen + timedelta(days=32)).replace(day=1),
        export_base="/completeness",
        export_query=query,
    )


@router.get("/completeness.{fmt}")
def completeness_export(
    request: Request,
    fmt: str,
    viewer: UserDep,
    state: StateDep,
    db: DbDep,
    month: str | None = None,
    node: str | None = None,
) -> Response:
    chosen = month_of(month, state)
    rows = _completeness(state, chosen, node_of(node))
    table = completeness_table(rows)
    answer = exported(
        request,
        viewer,
        db,
        table,
        fmt=check_format(fmt),
        filename=f"completeness-{chosen:%Y-%m}",
        target=f"completeness.{fmt}",
        month=f"{chosen:%Y-%m}",
        node=node or "",
    )
    if fmt == "json":  # the table, and the gaps and resets beside it
        return JSONResponse(
            {
                "month": f"{chosen:%Y-%m}",
                "rows": json_rows(table),
                "gaps": [
                    {
                        "node": g.node,
                        "stream": g.stream,
                        "first_seq": g.first,
                        "last_seq": g.last,
                        "after": g.after.isoformat(),
                        "before": g.before.isoformat(),
                    }
                    for r in rows
                    for g in r.gaps
                ],
                "resets": [
                    {
                        "node": x.node,
                        "stream": x.stream,
                        "previous_stream": x.previous,
                        "at": x.at.isoformat(),
                        "first_seq": x.first_seq,
                    }
                    for r in rows
                    for x in r.resets
                ],
            }
        )
    return answer


# ------------------------------------------------------------------------------ node


def _node_page(state: StateDep, db: DbDep, node: str) -> NodePage:
    picked = node_of(node) or ""
    web = effective_web(state, db)
    page = node_page(
        state.read_side(),
        state.fleet,
        picked,
        now=state.clock(),
        zone=ZoneInfo(web.timezone),
        stale_after=web.stale_after,
        offline_after=web.offline_after,
        intervals=web.expected_interval_s,
    )
    if page is None:
        raise HTTPException(404, f"node {picked} is not in the manifest and has sent no data")
    return page


@router.get("/nodes/{node}")
def node_view(request: Request, node: str, viewer: UserDep, state: StateDep, db: DbDep) -> Response:
    page = _node_page(state, db, node)
    return render(request, "node.html", viewer=viewer, page=page, node=page.status.node)


def readings_table(page: NodePage) -> Table:
    """The node's recent readings and its last health report: one column per tag and field."""
    rows = list(page.recent) + ([page.health] if page.health is not None else [])
    measurement = {id(r): r.key for r in page.recent}
    tags = sorted({k for r in rows for k in r.tags} - {"node", "trial", "site"})
    fields = sorted({k for r in rows for k in r.fields})
    columns = [Column("at", _("When")), Column("measurement", _("Measurement"))]
    columns += [Column(f"tag_{k}", k) for k in tags] + [Column(k, k) for k in fields]
    return Table(
        columns,
        [
            {
                "at": r.at,
                "measurement": measurement.get(id(r), "node_health"),
                **{f"tag_{k}": r.tags.get(k) for k in tags},
                **{k: r.fields.get(k) for k in fields},
            }
            for r in rows
        ],
    )


@router.get("/nodes/{node}/readings.{fmt}")
def node_readings_export(
    request: Request, node: str, fmt: str, viewer: UserDep, state: StateDep, db: DbDep
) -> Response:
    table = readings_table(_node_page(state, db, node))
    return exported(
        request,
        viewer,
        db,
        table,
        fmt=check_format(fmt),
        filename=f"{node}-readings",
        target=f"nodes/{node}/readings.{fmt}",
    )


# ------------------------------------------------------------------------------ trials


@router.get("/trials")
def trials_list(request: Request, viewer: UserDep, state: StateDep) -> Response:
    fleet = state.fleet
    counts = {t.id: sum(1 for n in fleet.nodes if n.trial == t.id) for t in fleet.trials}
    return render(request, "trials.html", viewer=viewer, trials=fleet.trials, counts=counts)


def _trial(state: StateDep, trial: str, month: date) -> TrialPage:
    page = trial_page(
        state.read_side(),
        state.fleet,
        trial,
        month=month,
        zone=ZoneInfo(state.config.web.timezone),
    )
    if page is None:
        raise HTTPException(404, f"trial {trial!r} is not in the fleet manifest")
    return page


def _figure(state: StateDep, trial: str, name: str, month: date) -> FigureData:
    found = one_figure(
        state.read_side(),
        state.fleet,
        trial,
        name,
        month=month,
        zone=ZoneInfo(state.config.web.timezone),
    )
    if found is None:
        raise HTTPException(404, f"trial {trial!r} has no figure {name!r}")
    return found


@router.get("/trials/{trial}")
def trial_view(
    request: Request, trial: str, viewer: UserDep, state: StateDep, month: str | None = None
) -> Response:
    chosen = month_of(month, state)
    page = _trial(state, trial, chosen)
    return render(
        request,
        "trial.html",
        viewer=viewer,
        page=page,
        month=chosen,
        previous=(chosen - timedelta(days=1)).replace(day=1),
        following=(chosen + timedelta(days=32)).replace(day=1),
        report=False,
    )


@router.get("/trials/{trial}/report")
def trial_report(
    request: Request,
    trial: str,
    viewer: UserDep,
    state: StateDep,
    db: DbDep,
    month: str | None = None,
) -> Response:
    """The monthly report: the trial page laid out for printing (and Chromium's PDF)."""
    chosen = month_of(month, state)
    page = _trial(state, trial, chosen)
    assert viewer.user is not None
    audit(
        db,
        actor=viewer.user.username,
        action="report",
        target=f"{trial} {chosen:%Y-%m}",
        client=client_of(request),
    )
    return render(
        request,
        "trial.html",
        viewer=viewer,
        page=page,
        month=chosen,
        report=True,
        previous=None,
        following=None,
    )


@router.get("/trials/{trial}/charts/{name}.svg")
def trial_chart(
    request: Request,
    trial: str,
    name: str,
    viewer: UserDep,
    state: StateDep,
    month: str | None = None,
) -> Response:
    chosen = month_of(month, state)
    data = _figure(state, trial, name, chosen)
    svg = cached_chart(
        tuple(data.bars),
        title=_(data.spec.title),
        unit=_(data.spec.unit),
        integers=data.spec.fn in ("count", "sum") and data.spec.scale == 1.0,
    )
    etag = '"' + hashlib.sha256(svg).hexdigest()[:32] + '"'
    # Aggregates only: the browser may keep it a little, for this user alone.
    headers = {"ETag": etag, "Cache-Control": "private, max-age=60"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(svg, media_type="image/svg+xml", headers=headers)


@functools.lru_cache(maxsize=256)
def cached_chart(
    bars: tuple[tuple[str, float | None], ...], *, title: str, unit: str, integers: bool
) -> bytes:
    """A chart drawn once for the same figures, title and unit (drawing costs ~0.1 s)."""
    return bar_chart(bars, title=title, unit=unit, integers=integers)


def figure_table(data: FigureData) -> Table:
    key = LABELS[data.spec.shape]
    header = {"day": _("Day"), "hour": _("Hour (JST)"), "value": _("Value"), "node": _("Node")}
    numeric = key in ("day", "hour")
    return Table(
        [Column(key, header[key]), Column(data.spec.name, _(data.spec.title), _(data.spec.unit))],
        [
            {key: int(label) if numeric else label, data.spec.name: value}
            for label, value in data.bars
        ],
    )


@router.get("/trials/{trial}/figures/{name}.{fmt}")
def trial_figure_export(
    request: Request,
    trial: str,
    name: str,
    fmt: str,
    viewer: UserDep,
    state: StateDep,
    db: DbDep,
    month: str | None = None,
) -> Response:
    chosen = month_of(month, state)
    return exported(
        request,
        viewer,
        db,
        figure_table(_figure(state, trial, name, chosen)),
        fmt=check_format(fmt),
        filename=f"{trial}-{name}-{chosen:%Y-%m}",
        target=f"trials/{trial}/{name}.{fmt}",
        month=f"{chosen:%Y-%m}",
    )
