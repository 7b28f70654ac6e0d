"""The JSON API under ``/api/v1``, for partners' scripts: read-only, per-client bearer tokens.

The same query functions as the pages answer it; the OpenAPI document is at
``/api/v1/openapi.json``. Bad input is a 4xx naming the parameter, never a 500.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import AwareDatetime, BaseModel

from cloud.errors import StoreError
from cloud.store.read import check_name
from cloud.web.deps import ApiDep, DbDep, StateDep
from cloud.web.routers.common import fleet_now, month_of
from cloud.web.views.completeness import completeness_month
from cloud.web.views.trials import trial_page
from protocol.limits import NODE_ID


class Problem(BaseModel):
    """What went wrong, in words (a list of them for invalid parameters)."""

    detail: str | list[str]


router = APIRouter(
    prefix="/api/v1",
    tags=["api"],
    responses={
        401: {"model": Problem, "description": "No valid API token."},
        422: {"model": Problem, "description": "A parameter is not valid; says which and why."},
        502: {"model": Problem, "description": "The store refused the query."},
        503: {"model": Problem, "description": "The store cannot be reached; try again."},
    },
)

Month = Annotated[str | None, Query(pattern=r"^20\d\d-(0[1-9]|1[0-2])$", examples=["2026-03"])]
NodeId = Annotated[str, Query(pattern=NODE_ID.pattern, max_length=63)]
#: Times a request may name (InfluxDB's nanosecond times end in 2262).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
#: The most points one readings request returns.
MAX_POINTS = 10_000


class NodeOut(BaseModel):
    node: str
    kind: str
    trial: str
    site: str
    state: str
    last_seen: datetime | None
    software: str | None
    battery_pct: float | None
    outbox_readings: int | None
    alarms: int | None


class NodesOut(BaseModel):
    nodes: list[NodeOut]


class TrialOut(BaseModel):
    id: str
    name: str
    description: str
    partner: str
    started: date | None
    nodes: list[str]


class TrialsOut(BaseModel):
    trials: list[TrialOut]


class FigureOut(BaseModel):
    name: str
    title: str
    unit: str
    shape: str
    #: (label, value): a day of the month or an hour (int), a tag value or a node (str).
    bars: list[tuple[int | str, float | None]]


class TrialFiguresOut(BaseModel):
    trial: str
    month: str
    figures: list[FigureOut]


class DayOut(BaseModel):
    node: str
    date: date
    received: int
    expected: int


class GapOut(BaseModel):
    node: str
    stream: str
    first_seq: int
    last_seq: int
    after: datetime
    before: datetime


class CompletenessOut(BaseModel):
    month: str
    days: list[DayOut]
    gaps: list[GapOut]


class ReadingOut(BaseModel):
    at: datetime
    tags: dict[str, str]
    fields: dict[str, Any]


class ReadingsOut(BaseModel):
    measurement: str
    node: str | None
    since: datetime
    until: datetime
    readings: list[ReadingOut]


@router.get("/nodes", response_model=NodesOut)
def api_nodes(token: ApiDep, state: StateDep, db: DbDep) -> NodesOut:
    """Every node: its state from data, last data time and its last reports."""
    rows = fleet_now(state, db)
    return NodesOut(
        nodes=[
            NodeOut(
                node=r.node,
                kind=r.kind,
                trial=r.trial,
                site=r.site,
                state=r.state,
                last_seen=r.last_seen,
                software=r.software,
                battery_pct=r.battery_pct,
                outbox_readings=r.outbox_readings,
                alarms=r.alarms,
            )
            for r in rows
        ]
    )


@router.get("/trials", response_model=TrialsOut)
def api_trials(token: ApiDep, state: StateDep) -> TrialsOut:
    """The trials of the fleet manifest and their nodes."""
    fleet = state.fleet
    return TrialsOut(
        trials=[
            TrialOut(
                id=t.id,
                name=t.name,
                description=t.description,
                partner=t.partner,
                started=t.started,
                nodes=[n.id for n in fleet.nodes if n.trial == t.id],
            )
            for t in fleet.trials
        ]
    )


@router.get(
    "/trials/{trial}/figures",
    response_model=TrialFiguresOut,
    responses={404: {"model": Problem, "description": "No such trial."}},
)
def api_trial_figures(
    token: ApiDep,
    state: StateDep,
    trial: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")],
    month: Month = None,
) -> TrialFiguresOut:
    """A trial's figures for a month (per day of the month, or per hour of the day)."""
    chosen = month_of(month, state)
    page = trial_page(
        state.read_side(),
        state.fleet,
        trial,
        month=chosen,
        zone=ZoneInfo(state.config.web.timezone),
        with_daily=False,
    )
    if page is None:
        raise HTTPException(404, f"trial {trial!r} is not in the fleet manifest")
    return TrialFiguresOut(
        trial=trial,
        month=f"{chosen:%Y-%m}",
        figures=[
            FigureOut(
                name=f.spec.name,
                title=f.spec.title,
                unit=f.spec.unit,
                shape=f.spec.shape,
                bars=[
                    (int(label) if f.spec.shape in ("per_day", "per_hour_of_day") else label, value)
                    for label, value in f.bars
                ],
            )
            for f in page.figures
        ],
    )


@router.get("/completeness", response_model=CompletenessOut)
def api_completeness(
    token: ApiDep,
    state: StateDep,
    month: Month = None,
    node: Annotated[str | None, Query(pattern=NODE_ID.pattern, max_length=63)] = None,
) -> CompletenessOut:
    """Envelopes received and expected per node and day of a month, and the gaps."""
    chosen = month_of(month, state)
    rows = completeness_month(
        state.read_side(),
        state.fleet,
        month=chosen,
        zone=ZoneInfo(state.config.web.timezone),
        node=node,
    )
    return CompletenessOut(
        month=f"{chosen:%Y-%m}",
        days=[
            DayOut(node=r.node, date=d.day, received=d.received, expected=d.expected)
            for r in rows
            for d in r.days
        ],
        gaps=[
            GapOut(
                node=g.node,
                stream=g.stream,
                first_seq=g.first,
                last_seq=g.last,
                after=g.after,
                before=g.before,
            )
            for r in rows
            for g in r.gaps
        ],
    )


@router.get("/readings", response_model=ReadingsOut)
def api_readings(
    token: ApiDep,
    state: StateDep,
    measurement: Annotated[str, Query(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")],
    since: AwareDatetime,
    until: AwareDatetime | None = None,
    node: Annotated[str | None, Query(pattern=NODE_ID.pattern, max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_POINTS)] = 1000,
) -> ReadingsOut:
    """The newest ``limit`` readings of a measurement in a time range (at most 31 days)."""
    end = until or state.clock()
    try:
        check_name("measurement", measurement)
    except StoreError as exc:
        raise HTTPException(422, str(exc)) from None
    for name, value in (("since", since), ("until", end)):
        if not EARLIEST <= value <= LATEST:
            raise HTTPException(422, f"{name} must be between 2000 and 2100")
    if end <= since:
        raise HTTPException(422, "until must be after since")
    if end - since > timedelta(days=31):
        raise HTTPException(422, "a range of at most 31 days; page through longer ones")
    rows = state.read_side().points(
        measurement,
        since=since.astimezone(UTC),
        until=end.astimezone(UTC),
        node=node,
        limit=limit,
    )
    return ReadingsOut(
        measurement=measurement,
        node=node,
        since=since,
        until=end,
        readings=[ReadingOut(at=r.at, tags=dict(r.tags), fields=dict(r.fields)) for r in rows],
    )
