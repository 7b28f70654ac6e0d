"""The fleet manifest: which trials run, at which sites, with which nodes (``fleet.toml``).

The collector takes a reading's trial and site from here, looked up by the node id of the topic
the reading came on, never from what the node says about itself. The file is read once at start
into frozen objects; a bad file is one :class:`~cloud.errors.ConfigError` naming every problem.

>>> fleet = Fleet.model_validate({
...     "trials": [{"id": "restroom-health", "name": "Restroom"}],
...     "sites": [{"id": "doho", "name": "Doho Park", "trial": "restroom-health"}],
...     "nodes": [{"id": "rr-02", "kind": "restroom", "trial": "restroom-health", "site": "doho"}],
... })
>>> fleet.assignment("rr-02")
Assignment(trial='restroom-health', site='doho', kind='restroom')
>>> fleet.assignment("rr-99") is None
True

Each node also has a budget (:class:`~protocol.limits.Budget`, counted by
:mod:`cloud.collector.budget`): how many distinct measurements, tag keys, values per tag key
and series it may create in the store. ``[budgets]`` sets every node's, ``[budgets.kind.<kind>]``
those of one kind, a node's ``budget = {...}`` its own; what none sets is the contract's:

>>> fleet.budget("rr-02").series
1024

Node ids are MQTT user names, so the names of the cloud's own users (``collector``,
``collector-<n>``, ``consult`` ...: :data:`protocol.limits.SERVICE_USER`) are refused as node ids.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from cloud.errors import ConfigError
from protocol.limits import DEFAULT_BUDGET, NODE_ID, SERVICE_USER, Budget
from protocol.messages import NodeKind

#: Trial, site and kind of a node the manifest does not know, when ``unknown_nodes = "accept"``.
UNASSIGNED = "unassigned"


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Trial(_Entry):
    """One pilot project, run with a partner."""

    id: str = Field(min_length=1, max_length=128)
    name: str
    description: str = ""
    started: date | None = None
    partner: str = ""


class Site(_Entry):
    """A place where one trial's nodes stand."""

    id: str = Field(min_length=1, max_length=128)
    name: str
    trial: str
    area: str = ""
    address: str = ""
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class BudgetOverride(_Entry):
    """Numbers of a node's :class:`~protocol.limits.Budget` to change; the others stay."""

    measurements: int | None = Field(default=None, ge=1)
    tag_keys: int | None = Field(default=None, ge=0)
    tag_values: int | None = Field(default=None, ge=1)
    series: int | None = Field(default=None, ge=1)

    def over(self, base: Budget) -> Budget:
        """``base`` with the numbers given here."""
        given = {
            name: value
            for name in ("measurements", "tag_keys", "tag_values", "series")
            if (value := getattr(self, name)) is not None
        }
        return dataclasses.replace(base, **given)


class Budgets(BudgetOverride):
    """``[budgets]``: every node's budget (the contract's where not given), and
    ``[budgets.kind.<kind>]`` for the nodes of one kind."""

    kind: dict[NodeKind, BudgetOverride] = Field(default_factory=dict)


class FleetNode(_Entry):
    """A node of the fleet; its id is also its MQTT username and topic level."""

    id: str
    kind: NodeKind
    trial: str
    site: str
    #: What a vehicle's sensor hub broadcasts, so stations can tell vehicles apart.
    vehicle_id: int | None = Field(default=None, ge=0, le=0xFFFFFFFF)
    #: This node's own budget numbers, over its kind's.
    budget: BudgetOverride | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not NODE_ID.fullmatch(v):
            raise ValueError(f"{v!r} must match {NODE_ID.pattern}")
        if SERVICE_USER.fullmatch(v):
            raise ValueError(
                f"{v!r} is reserved: the broker ACL gives the cloud's services (collector,"
                " collector-<n>, consult, consult-<n>) more than a node, and a node id is its"
                " MQTT user name"
            )
        return v


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a node's readings belong: its trial, its site, and what kind of node it is."""

    trial: str
    site: str
    kind: str


#: What a node the manifest does not know gets, when such nodes are accepted.
UNASSIGNED_NODE = Assignment(trial=UNASSIGNED, site=UNASSIGNED, kind=UNASSIGNED)


class Fleet(_Entry):
    """The whole manifest, cross-checked: every id unique, every reference resolves."""

    trials: list[Trial] = Field(default_factory=list)
    sites: list[Site] = Field(default_factory=list)
    nodes: list[FleetNode] = Field(default_factory=list)
    budgets: Budgets = Field(default_factory=Budgets)
    _table: dict[str, Assignment] | None = PrivateAttr(default=None)
    _budgets: dict[str, Budget] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _references(self) -> Fleet:
        problems: list[str] = []
        for what, ids in (
            ("trial", [t.id for t in self.trials]),
            ("site", [s.id for s in self.sites]),
            ("node", [n.id for n in self.nodes]),
        ):
            seen: set[str] = set()
            for i in ids:
                if i in seen:
                    problems.append(f"{what} {i!r} is listed more than once")
                seen.add(i)
        trials = {t.id for t in self.trials}
        sites = {s.id: s for s in self.sites}
        for s in self.sites:
            if s.trial not in trials:
                problems.append(f"site {s.id!r}: trial {s.trial!r} is not in [[trials]]")
        for n in self.nodes:
            if n.trial not in trials:
                problems.append(f"node {n.id!r}: trial {n.trial!r} is not in [[trials]]")
            site = sites.get(n.site)
            if site is None:
                problems.append(f"node {n.id!r}: site {n.site!r} is not in [[sites]]")
            elif site.trial != n.trial:
                problems.append(
                    f"node {n.id!r}: site {n.site!r} belongs to trial {site.trial!r}, "
                    f"not {n.trial!r}"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def assignment(self, node: str) -> Assignment | None:
        """Trial, site and kind of ``node``, or None when the manifest does not list it."""
        return self._by_id().get(node)

    def budget(self, node: str) -> Budget:
        """What ``node`` may create in the store: the contract's :class:`Budget`, then
        ``[budgets]``, its kind's ``[budgets.kind.<kind>]``, its own ``budget``; a node the
        manifest does not list (accepted with ``unknown_nodes = "accept"``) gets ``[budgets]``.
        """
        if self._budgets is None:
            base = self.budgets.over(DEFAULT_BUDGET)
            table = {"": base}
            for n in self.nodes:
                kind = self.budgets.kind.get(n.kind)
                budget = kind.over(base) if kind is not None else base
                table[n.id] = n.budget.over(budget) if n.budget is not None else budget
            self._budgets = table
        return self._budgets.get(node) or self._budgets[""]

    def _by_id(self) -> dict[str, Assignment]:
        # Built once: the model is frozen, so the table never goes stale.
        if self._table is None:
            self._table = {n.id: Assignment(n.trial, n.site, n.kind) for n in self.nodes}
        return self._table


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "manifest"


def load_fleet(path: Path) -> Fleet:
    """Read and check a fleet manifest; raise :class:`ConfigError` naming every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"fleet manifest {path}: cannot read it: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"fleet manifest {path}: not valid TOML: {exc}") from None
    try:
        return Fleet.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(f"{_where(err['loc'])}: {msg}" if err["loc"] else msg)
        raise ConfigError(f"fleet manifest {path}: " + "; ".join(problems)) from None
