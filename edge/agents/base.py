"""The contract between the node runtime and its sensor agents.

An agent reads one kind of sensor and hands readings to ``ctx.emit`` on the asyncio loop's
thread; the runtime puts them into the outbox. :func:`build_agents` picks the agents a node
runs from its kind.

>>> from datetime import UTC, datetime
>>> from edge.config import NodeConfig
>>> cfg = NodeConfig.model_validate({"node": {"id": "k-01", "kind": "kiosk"}})
>>> got = []
>>> ctx = AgentContext(node="k-01", config=cfg, emit=lambda r, urgent=False: got.append(r),
...                    clock=lambda: datetime.now(UTC))
>>> [a.name for a in build_agents(ctx)]
['node_health']
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from pydantic import ValidationError

from protocol.messages import FieldValue, Reading

if TYPE_CHECKING:
    from edge.config import NodeConfig
    from hardware.ble import Radio

log = structlog.get_logger(__name__)


class Emit(Protocol):
    """Where an agent hands a reading; ``urgent`` asks the runtime to commit and send at once."""

    def __call__(self, reading: Reading, *, urgent: bool = False) -> None: ...


class OutboxStatsView(Protocol):
    """The parts of ``edge.outbox.OutboxStats`` the node health agent reads."""

    @property
    def pending_rows(self) -> int: ...
    @property
    def pending_readings(self) -> int: ...
    @property
    def oldest_pending_at(self) -> float | None: ...
    @property
    def produced(self) -> int: ...
    @property
    def sent(self) -> int: ...
    @property
    def receipted(self) -> int: ...
    @property
    def dropped(self) -> int: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _no_link_stats() -> Mapping[str, int | float | bool]:
    return {}


@dataclass(frozen=True)
class AgentContext:
    """What an agent gets from the runtime: who the node is, its config, and where to emit.

    >>> from edge.config import NodeConfig
    >>> cfg = NodeConfig.model_validate({"node": {"id": "rr-01", "kind": "restroom"}})
    >>> AgentContext(node="rr-01", config=cfg, emit=lambda r, urgent=False: None).node
    'rr-01'
    """

    node: str
    config: NodeConfig
    emit: Emit
    #: A gpiozero pin factory (``hardware.gpio.pin_factory(config.gpio.pin_factory)``).
    pin_factory: Any = None
    radio: Radio | None = None
    outbox_stats: Callable[[], OutboxStatsView] | None = None
    #: Link counters such as connected, alarms, reconnects; numeric ones go into node health.
    link_stats: Callable[[], Mapping[str, int | float | bool]] = field(default=_no_link_stats)
    #: Aware UTC now; tests inject their own.
    clock: Callable[[], datetime] = field(default=_utc_now)


class Agent(Protocol):
    """A sensor agent: runs until ``stop`` is set, never raising on sensor trouble."""

    name: str
    #: Sensors announced in the node's birth message.
    sensors: tuple[str, ...]

    async def run(self, stop: asyncio.Event) -> None: ...

    def close(self) -> None: ...


class Emitter:
    """Builds readings and emits them, logging and counting those the contract refuses.

    A reading that breaks the contract is a bug in the agent or a strange value from a device;
    either way it must not stop the agent, so it is logged and counted in ``rejected``.

    >>> got = []
    >>> em = Emitter("rr-01", lambda r, urgent=False: got.append(r), lambda: datetime.now(UTC))
    >>> em.emit("help_call", {"pressed": True}, sensor="help-button")
    True
    >>> got[0].m, em.rejected
    ('help_call', 0)
    """

    def __init__(self, node: str, emit: Emit, clock: Callable[[], datetime]) -> None:
        self.node = node
        self._emit = emit
        self._clock = clock
        self.emitted = 0
        self.rejected = 0

    def emit(
        self,
        m: str,
        fields: Mapping[str, FieldValue],
        *,
        at: datetime | None = None,
        sensor: str | None = None,
        tags: Mapping[str, str] | None = None,
        urgent: bool = False,
    ) -> bool:
        """Emit one reading; False when it was refused (and logged)."""
        try:
            reading = Reading(
                m=m,
                at=at if at is not None else self._clock(),
                sensor=sensor,
                tags=dict(tags or {}),
                fields=dict(fields),
            )
        except ValidationError as exc:
            self.rejected += 1
            log.error("reading_refused", node=self.node, m=m, sensor=sensor, error=str(exc))
            return False
        self._emit(reading, urgent=urgent)
        self.emitted += 1
        return True


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Wait until ``stop`` is set or ``seconds`` pass; True when stopped."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


def build_agents(ctx: AgentContext) -> list[Agent]:
    """The agents a node runs, by ``ctx.config.node.kind``; node health runs on every node."""
    # Imported here so a kiosk never imports gpiozero or bleak.
    from edge.agents.health import NodeHealthAgent

    kind = ctx.config.node.kind
    agents: list[Agent] = []
    if kind == "restroom":
        from edge.agents.restroom import RestroomAgent

        agents.append(RestroomAgent(ctx))
    elif kind == "vehicle":
        from edge.agents.mobility import MobilityAgent

        agents.append(MobilityAgent(ctx))
    elif kind == "station":
        from edge.agents.station import StationAgent

        agents.append(StationAgent(ctx))
    agents.append(NodeHealthAgent(ctx))
    return agents


async def supervise(
    what: str,
    node: str,
    run: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    *,
    retry_s: float = 5.0,
) -> None:
    """Run ``run(stop)`` until ``stop`` is set, restarting it after ``retry_s`` if it raises.

    Sensor trouble must never end an agent: whatever escapes a sensor loop is logged, counted
    by the log line, and the loop starts again.
    """
    while not stop.is_set():
        try:
            await run(stop)
        except Exception as exc:
            log.error("sensor_loop_failed", node=node, what=what, error=repr(exc))
        else:
            if stop.is_set():
                return
        if await wait_or_stop(stop, retry_s):
            return
