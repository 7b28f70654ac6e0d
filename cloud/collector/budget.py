"""Budgets per node: what each node has created in the store, and whether a message stays within.

A message within the contract's limits can still carry hundreds of new series, and a store's
index never forgets one (InfluxDB 1.x stops taking new series for every node once the database
holds ``max-series-per-database``). So each node has a :class:`~protocol.limits.Budget` (the
fleet manifest's numbers for it) of distinct measurements, tag keys, values per tag key and
series, and :class:`Usage` counts, per node, what it has in the store:

- **what counts**: what the node chooses. A series is (measurement, sensor, the reading's own
  tags); ``sensor`` counts as a tag key with its values. The cloud's tags (node, trial, site)
  and measurements (``link``, ``fleet_state``) do not count: a node moved to another site
  keeps its budget.
- **a message over budget is dead-lettered whole**, with one reason per budget it goes past,
  naming the budget, the node and the first new name or value past it; nothing of it is
  counted. That is how the contract refuses a message (all or nothing, so a node's outbox and
  receipts stay simple), and the node's later messages within budget keep flowing.
- **at start** the counts are seeded from the store (:meth:`Usage.seed_from`: ``SHOW SERIES``
  on InfluxDB, the distinct series of the SQLite store), so a restart neither forgets what a
  node has nor lets it start over. A store that cannot list its series (InfluxDB 2.x's v1
  compatibility has no ``SHOW SERIES``) leaves the counts empty, with a warning: then budgets
  count from the collector's start.
- **several collectors on one shared subscription** each count what they have seen (plus the
  store at their start), and admit a new series only while their own count is below the
  budget: each admits at most the budget, so a node reaches at most ``collectors x budget``
  series, and far less unless its new series arrive all at once. A restart reseeds from the
  store, which holds what every collector wrote.
- a message admitted and then refused by the store, or never acked, stays counted until the
  next start: counts err on the side of the store.

Checking costs nothing for known series: the line path
(:class:`~cloud.collector.lines.LineWriter`) asks only for the shapes it has not seen for the
node, and the answer is remembered there.

>>> usage = Usage()
>>> usage.admit("rr-01", Budget(series=1), [("visit", None, (("stall", "1"),))])
()
>>> [reason] = usage.admit("rr-01", Budget(series=1), [("visit", None, (("stall", "2"),))])
>>> reason.split(": ", 1)[1]
"the series budget of node 'rr-01' (1) is used up: 'visit' {'stall': '2'} would be one more"
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import structlog

from cloud.errors import StoreError
from protocol.limits import RESERVED_MEASUREMENTS, Budget

#: What a reading adds to its node's series: measurement, sensor (or None), its own tags.
Shape = tuple[str, str | None, tuple[tuple[str, str], ...]]
#: A series as counted: the shape with its tags sorted by key.
SeriesId = Shape

#: Tags the cloud sets on a reading's point from the manifest (``sensor`` is the node's).
_CLOUD_TAGS = frozenset({"node", "trial", "site"})
_SENSOR = "sensor"


class NodeUsage:
    """What one node has in the store: measurements, values per tag key, series."""

    __slots__ = ("measurements", "series", "tags")

    def __init__(self) -> None:
        self.measurements: set[str] = set()
        #: Tag key (``sensor`` too) -> its values.
        self.tags: dict[str, set[str]] = {}
        self.series: set[SeriesId] = set()

    def add(self, series: SeriesId) -> None:
        m, sensor, tags = series
        self.series.add(series)
        self.measurements.add(m)
        if sensor is not None:
            self.tags.setdefault(_SENSOR, set()).add(sensor)
        for key, value in tags:
            self.tags.setdefault(key, set()).add(value)


@runtime_checkable
class SeriesLister(Protocol):
    """A store that can list every series it holds (InfluxDB, SQLite)."""

    def node_series(self) -> Iterator[tuple[str, dict[str, str]]]:
        """Each series as (measurement, all its tags)."""
        ...


def series_id(m: str, sensor: str | None, tags: Iterable[tuple[str, str]]) -> SeriesId:
    """The counted identity of a reading's series (its tags in key order)."""
    return (m, sensor, tuple(sorted(tags)))


class Usage:
    """Per node, the series it has in the store; admits a message's new series within budget."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeUsage] = {}

    def of(self, node: str) -> NodeUsage:
        """What ``node`` has (empty when nothing is known of it)."""
        usage = self._nodes.get(node)
        if usage is None:
            usage = self._nodes[node] = NodeUsage()
        return usage

    def seed(self, measurement: str, tags: dict[str, str]) -> bool:
        """Count one series the store holds; False when it is none of a node's readings."""
        node = tags.get("node")
        if node is None or measurement in RESERVED_MEASUREMENTS:
            return False
        own = [(k, v) for k, v in tags.items() if k not in _CLOUD_TAGS and k != _SENSOR]
        self.of(node).add(series_id(measurement, tags.get(_SENSOR), own))
        return True

    def seed_from(self, store: object) -> int:
        """Count every series ``store`` holds; how many. A store that cannot list them is
        logged and leaves the counts as they are (see the module's docstring)."""
        # A logger of its own each time: this runs once per start, and a command run again in
        # the same process (the CLI's tests) must not log through one bound to an old stderr.
        log = structlog.get_logger(__name__)
        if not isinstance(store, SeriesLister):
            log.warning("budgets_not_seeded", why="the store cannot list its series")
            return 0
        try:
            seeded = sum(self.seed(m, tags) for m, tags in store.node_series())
        except StoreError as exc:
            log.warning("budgets_not_seeded", why=str(exc))
            return 0
        log.info("budgets_seeded", series=seeded, nodes=len(self._nodes))
        return seeded

    def admit(self, node: str, budget: Budget, shapes: Iterable[Shape]) -> tuple[str, ...]:
        """Count the new series of one message's readings (``shapes``, in reading order) when
        all fit ``budget``, and return no reasons; else count nothing and return one reason per
        budget gone past."""
        usage = self.of(node)
        known = usage.series
        new: dict[SeriesId, int] = {}
        for i, (m, sensor, tags) in enumerate(shapes):
            sid = series_id(m, sensor, tags)
            if sid not in known and sid not in new:
                new[sid] = i
        if not new:
            return ()
        reasons = _over(node, budget, usage, new)
        if not reasons:
            for sid in new:
                usage.add(sid)
        return reasons


def _over(node: str, budget: Budget, usage: NodeUsage, new: dict[SeriesId, int]) -> tuple[str, ...]:
    """The reasons ``new`` series (-> index of their first reading) go past ``budget``."""
    reasons: list[str] = []
    who = f"node {node!r}"
    if len(usage.series) + len(new) > budget.series:
        # The first new series past the budget (``new`` is in reading order).
        (m, sensor, tags), i = list(new.items())[max(0, budget.series - len(usage.series))]
        shown = {**({_SENSOR: sensor} if sensor is not None else {}), **dict(tags)}
        reasons.append(
            f"readings[{i}]: the series budget of {who} ({budget.series}) is used up: "
            f"{m!r} {shown!r} would be one more"
        )
    measurements: set[str] = set()
    keys: set[str] = set()
    values: dict[str, set[str]] = {}
    said: set[str] = set()
    for (m, sensor, tags), i in new.items():
        if m not in usage.measurements and m not in measurements:
            measurements.add(m)
            if len(usage.measurements) + len(measurements) > budget.measurements and _once(
                said, "m"
            ):
                reasons.append(
                    f"readings[{i}].m: the measurements budget of {who}"
                    f" ({budget.measurements}) is used up: {m!r} would be one more"
                )
        pairs: Sequence[tuple[str, str]] = tags
        if sensor is not None:
            pairs = [(_SENSOR, sensor), *tags]
        for key, value in pairs:
            where = f"readings[{i}].{key}" if key == _SENSOR else f"readings[{i}].tags.{key}"
            held = usage.tags.get(key)
            if held is None and key not in keys:
                keys.add(key)
                if len(usage.tags) + len(keys) > budget.tag_keys and _once(said, "keys"):
                    reasons.append(
                        f"{where}: the tag keys budget of {who} ({budget.tag_keys}) is used"
                        f" up: {key!r} would be one more"
                    )
            extra = values.setdefault(key, set())
            if (held is None or value not in held) and value not in extra:
                extra.add(value)
                count = (len(held) if held is not None else 0) + len(extra)
                if count > budget.tag_values and _once(said, "values"):
                    reasons.append(
                        f"{where}: the tag values budget of {who} ({budget.tag_values} per"
                        f" key) is used up: {key!r} = {value!r} would be one more"
                    )
    return tuple(reasons)


def _once(said: set[str], what: str) -> bool:
    """True the first time ``what`` is said: one reason per budget."""
    if what in said:
        return False
    said.add(what)
    return True


__all__ = ["NodeUsage", "SeriesLister", "Shape", "Usage", "series_id"]
