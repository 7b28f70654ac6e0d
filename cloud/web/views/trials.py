"""A trial's page: what it measures, where, and its main figures for a month.

Figures come from the points the collector tagged with the trial (from the fleet manifest),
bucketed by the store per day of the city (buckets moved by its UTC offset) or per hour,
folded here into hours of the day; readings per day from the daily rollups. The kiosk trial
is read from ``kiosk_usage`` only: counts per period, small ones suppressed on the kiosk,
never a resident's session.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from cloud.fleet import Fleet, Trial
from cloud.rollup import summaries
from cloud.store.read import AggregateFn, AggregateQuery, Bucket, ReadSide
from cloud.web.i18n import N_
from cloud.web.views.completeness import month_range

Shape = Literal["per_day", "per_hour_of_day", "per_group", "distinct_per_node"]
#: What a figure's labels are, by shape (a column header in tables and exports).
LABELS: dict[str, str] = {
    "per_day": "day",
    "per_hour_of_day": "hour",
    "per_group": "value",
    "distinct_per_node": "node",
}


@dataclass(frozen=True, slots=True)
class FigureSpec:
    """One figure of a trial: ``fn`` of ``field`` of ``measurement`` (points whose tags match
    ``where``), per day of the month, per hour of the day (averaged over the month's days),
    per value of tag ``by`` over the month (``per_group``), or per node the mean number of
    distinct values of tag ``by`` a day (``distinct_per_node``: vehicles seen at a station).

    ``title`` and ``unit`` are English message ids, translated when shown.
    """

    name: str
    title: str
    unit: str
    _: KW_ONLY
    measurement: str
    #: The field aggregated; several (their buckets added up) for a count of points whose
    #: fields differ, such as health checks from different devices.
    fields: tuple[str, ...]
    fn: AggregateFn
    shape: Shape
    where: tuple[tuple[str, str], ...] = ()
    #: Multiply each bucket's value (e.g. seconds occupied -> hours).
    scale: float = 1.0
    #: What a reader must know to read the figure right (shown under it).
    note: str = ""
    #: The tag of a per_group or distinct_per_node figure.
    by: str = ""


#: The figures of each kind of trial, by the kind of node it runs.
FIGURES: dict[str, tuple[FigureSpec, ...]] = {
    "restroom": (
        FigureSpec(
            "visits_per_day",
            N_("Visits per day"),
            N_("visits"),
            measurement="visit",
            fields=("duration_s",),
            fn="count",
            shape="per_day",
        ),
        FigureSpec(
            "occupancy_by_hour",
            N_("Occupied stall-hours by hour of day"),
            N_("hours"),
            measurement="occupancy",
            fields=("occupied_s",),
            fn="sum",
            shape="per_hour_of_day",
            scale=1 / 3600,
        ),
        FigureSpec(
            "help_calls_by_hour",
            N_("Help calls by hour of day"),
            N_("calls"),
            measurement="help_call",
            fields=("pressed",),
            fn="count",
            shape="per_hour_of_day",
        ),
        FigureSpec(
            "health_checks_per_day",
            N_("Health-check uses per day"),
            N_("uses"),
            measurement="health_check",
            fields=("weight_kg", "systolic_mmhg", "temperature_c"),
            fn="count",
            shape="per_day",
        ),
    ),
    "vehicle": (
        FigureSpec(
            "trips_per_day",
            N_("Trips per day"),
            N_("trips"),
            measurement="trip",
            fields=("distance_m",),
            fn="count",
            shape="per_day",
        ),
        FigureSpec(
            "distance_per_day",
            N_("Distance ridden per day"),
            N_("km"),
            measurement="trip",
            fields=("distance_m",),
            fn="sum",
            shape="per_day",
            scale=1 / 1000,
        ),
        FigureSpec(
            "battery_by_hour",
            N_("Mean battery by hour of day"),
            N_("%"),
            measurement="ride",
            fields=("battery_pct",),
            fn="mean",
            shape="per_hour_of_day",
        ),
    ),
    "station": (
        FigureSpec(
            "vehicles_per_station",
            N_("Vehicles parked at each station, a day"),
            N_("vehicles"),
            measurement="parked_vehicle",
            fields=("odometer_m",),
            fn="count",
            shape="distinct_per_node",
            by="vehicle",
            note=N_("The mean over the month's days of how many vehicles each station heard."),
        ),
        FigureSpec(
            "arrivals_per_day",
            N_("Vehicle arrivals per day"),
            N_("arrivals"),
            measurement="vehicle_arrived",
            fields=("odometer_m",),
            fn="count",
            shape="per_day",
        ),
    ),
    "kiosk": (
        FigureSpec(
            "sessions_per_day",
            N_("Kiosk sessions per day"),
            N_("sessions"),
            measurement="kiosk_usage",
            fields=("count",),
            fn="sum",
            shape="per_day",
            where=(("dimension", "sessions"),),
            note=N_(
                "Counted on the kiosk per hour; an hour with fewer than k sessions is sent as "
                "'<k' and is not in these sums."
            ),
        ),
        FigureSpec(
            "sessions_by_language",
            N_("Kiosk sessions by language this month"),
            N_("sessions"),
            measurement="kiosk_usage",
            fields=("count",),
            fn="sum",
            shape="per_group",
            by="value",
            where=(("dimension", "language"),),
            note=N_(
                "Counted on the kiosk per hour; an hour with fewer than k sessions in a "
                "language is sent as '<k' and is not in these sums."
            ),
        ),
        FigureSpec(
            "consultations_per_day",
            N_("Consultations requested per day"),
            N_("consultations"),
            measurement="kiosk_usage",
            fields=("count",),
            fn="sum",
            shape="per_day",
            where=(("dimension", "consultation"),),
            note=N_(
                "Counted on the kiosk per hour; an hour with fewer than k requests is sent as "
                "'<k' and is not in these sums."
            ),
        ),
    ),
}


@dataclass(frozen=True, slots=True)
class FigureData:
    spec: FigureSpec
    #: (label, value): day of month "1".."31" or hour "0".."23"; None where nothing came.
    bars: list[tuple[str, float | None]]

    @property
    def total(self) -> float:
        return sum(v for _l, v in self.bars if v is not None)


@dataclass(frozen=True, slots=True)
class TrialPage:
    trial: Trial
    kinds: list[str]
    sites: list[tuple[str, str, int]]  # id, name, nodes
    figures: list[FigureData]
    daily_points: list[tuple[date, int]]  # readings delivered per day, each envelope once


def _queries(
    spec: FigureSpec,
    trial: str,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    nodes: Sequence[str] = (),
) -> list[AggregateQuery]:
    """The store queries of one figure for a month: one per field it adds up (per node, for a
    distinct_per_node figure)."""
    if spec.fn == "mean" and (len(spec.fields) > 1 or spec.shape != "per_hour_of_day"):
        raise ValueError(f"figure {spec.name}: a mean is of one field, per hour")
    if spec.shape == "per_hour_of_day":
        every, offset = timedelta(hours=1), timedelta(0)
    else:
        # Day buckets that start at the city's midnight (its offset at the month's start).
        every, offset = timedelta(days=1), -(start.astimezone(zone).utcoffset() or timedelta(0))
    by = spec.by or None
    wheres = (
        [{"node": n} for n in nodes]
        if spec.shape == "distinct_per_node"
        else [{"trial": trial, **dict(spec.where)}]
    )
    return [
        AggregateQuery(spec.measurement, name, spec.fn, every, by, start, end, where, offset)
        for where in wheres
        for name in spec.fields
    ]


def _fold(
    spec: FigureSpec,
    buckets: list[list[Bucket]],
    days: list[date],
    zone: ZoneInfo,
    nodes: Sequence[str] = (),
) -> FigureData:
    """A figure's bars from its queries' buckets (their fields' buckets added up)."""
    if spec.shape == "distinct_per_node":
        bars: list[tuple[str, float | None]] = []
        per = len(spec.fields)
        for i, node in enumerate(nodes):
            seen: dict[date, set[str]] = defaultdict(set)
            for field_buckets in buckets[i * per : (i + 1) * per]:
                for b in field_buckets:
                    if b.value:
                        seen[b.start.astimezone(zone).date()].add(b.group)
            bars.append((node, sum(map(len, seen.values())) / len(seen) if seen else None))
        return FigureData(spec, bars)
    if spec.shape == "per_group":
        totals: dict[str, float] = defaultdict(float)
        for field_buckets in buckets:
            for b in field_buckets:
                totals[b.group] += float(b.value) * spec.scale
        return FigureData(spec, sorted(totals.items()))
    summed: dict[datetime, float] = defaultdict(float)
    for field_buckets in buckets:
        for b in field_buckets:
            summed[b.start] += float(b.value) * spec.scale
    if spec.shape == "per_day":
        per_day = {at.astimezone(zone).date(): value for at, value in summed.items()}
        return FigureData(spec, [(str(d.day), per_day.get(d)) for d in days])
    by_hour: dict[int, list[float]] = defaultdict(list)
    for at, value in sorted(summed.items()):
        by_hour[at.astimezone(zone).hour].append(value)
    # The mean over the days the hour had data: a typical day, not a month's total.
    return FigureData(
        spec,
        [(str(h), sum(by_hour[h]) / len(by_hour[h]) if by_hour[h] else None) for h in range(24)],
    )


def figures(
    store: ReadSide,
    specs: Sequence[FigureSpec],
    trial: str,
    month: date,
    zone: ZoneInfo,
    *,
    fleet: Fleet | None = None,
) -> list[FigureData]:
    """Several figures of a trial for a month, their queries sent to the store at once."""
    start, end, days = month_range(month, zone)
    stations = sorted(n.id for n in (fleet.nodes if fleet else []) if n.trial == trial)
    per_spec = [
        _queries(spec, trial, start, end, zone, _nodes_of(spec, stations, fleet)) for spec in specs
    ]
    answers = store.aggregate_many([q for queries in per_spec for q in queries])
    out, i = [], 0
    for spec, queries in zip(specs, per_spec, strict=True):
        nodes = _nodes_of(spec, stations, fleet)
        out.append(_fold(spec, answers[i : i + len(queries)], days, zone, nodes))
        i += len(queries)
    return out


def _nodes_of(spec: FigureSpec, trial_nodes: list[str], fleet: Fleet | None) -> list[str]:
    """The nodes a distinct_per_node figure has a bar for: the trial's nodes of the kind
    whose measurement it is (stations, for parked vehicles)."""
    if spec.shape != "distinct_per_node" or fleet is None:
        return []
    kinds = {k for k, specs in FIGURES.items() if spec in specs}
    return [n.id for n in fleet.nodes if n.id in trial_nodes and n.kind in kinds]


def figure(
    store: ReadSide,
    spec: FigureSpec,
    trial: str,
    month: date,
    zone: ZoneInfo,
    *,
    fleet: Fleet | None = None,
) -> FigureData:
    return figures(store, [spec], trial, month, zone, fleet=fleet)[0]


def trial_page(
    store: ReadSide,
    fleet: Fleet,
    trial_id: str,
    *,
    month: date,
    zone: ZoneInfo,
    with_figures: bool = True,
    with_daily: bool = True,
) -> TrialPage | None:
    trial = next((t for t in fleet.trials if t.id == trial_id), None)
    if trial is None:
        return None
    nodes = [n for n in fleet.nodes if n.trial == trial_id]
    kinds = sorted({str(n.kind) for n in nodes})
    sites = [
        (s.id, s.name, sum(1 for n in nodes if n.site == s.id))
        for s in fleet.sites
        if s.trial == trial_id
    ]
    specs = [spec for k in kinds for spec in FIGURES.get(k, ())]
    made = figures(store, specs, trial_id, month, zone, fleet=fleet) if with_figures else []
    start, end, days = month_range(month, zone)
    ids = {n.id for n in nodes}
    per_day: dict[date, int] = defaultdict(int)
    for part in summaries(store, start, end, zone) if with_daily else []:
        if part.node in ids:
            per_day[part.day] += part.readings
    return TrialPage(trial, kinds, sites, made, [(d, per_day.get(d, 0)) for d in days])


def one_figure(
    store: ReadSide, fleet: Fleet, trial_id: str, name: str, *, month: date, zone: ZoneInfo
) -> FigureData | None:
    """One figure of a trial (for its chart and its exports), or None if it has no such."""
    if not any(t.id == trial_id for t in fleet.trials):
        return None
    kinds = sorted({str(n.kind) for n in fleet.nodes if n.trial == trial_id})
    spec = next((f for k in kinds for f in FIGURES.get(k, ()) if f.name == name), None)
    return None if spec is None else figure(store, spec, trial_id, month, zone, fleet=fleet)
