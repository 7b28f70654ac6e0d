"""Which agents a node runs, and how they behave without the hardware they expect."""

from __future__ import annotations

import asyncio

import pytest
from gpiozero.pins.mock import MockFactory

from edge.agents import AgentContext, build_agents
from edge.agents.testing import RecordingEmit
from edge.config import NodeConfig


def context(kind: str, **sections) -> tuple[AgentContext, RecordingEmit]:
    cfg = NodeConfig.model_validate({"node": {"id": "n-01", "kind": kind}, **sections})
    emit = RecordingEmit()
    return AgentContext(node="n-01", config=cfg, emit=emit, pin_factory=MockFactory()), emit


@pytest.mark.parametrize(
    ("kind", "names"),
    [
        ("restroom", ["restroom", "node_health"]),
        ("vehicle", ["mobility", "node_health"]),
        ("station", ["station", "node_health"]),
        ("kiosk", ["node_health"]),
    ],
)
def test_node_kind_decides_its_agents(kind, names):
    ctx, _ = context(kind)
    agents = build_agents(ctx)
    assert [a.name for a in agents] == names
    assert all(isinstance(a.sensors, tuple) for a in agents)


@pytest.mark.parametrize(
    ("kind", "sections"),
    [
        ("station", {}),
        ("vehicle", {"mobility": {"gatt_address": "C0:FF:EE:00:00:07"}}),
        ("restroom", {"restroom": {"health_devices": [{"address": "AA:00", "kind": "scale"}]}}),
    ],
)
def test_agent_without_a_radio_logs_and_keeps_running_until_stopped(kind, sections):
    ctx, emit = context(kind, **sections)
    [agent, _health] = build_agents(ctx)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await asyncio.sleep(0)  # let it start
        assert not task.done()
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    agent.close()
    assert emit.readings == []
