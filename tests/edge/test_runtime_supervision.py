"""The runtime watches its tasks: a failing agent is an alarm, and the node goes on."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from edge.config import NodeConfig
from edge.outbox import Outbox
from edge.runtime import NodeRuntime

TIMEOUT_S = 20.0


class BrokenAgent:
    """An agent whose sensor code fails once it has run a little."""

    name = "broken"
    sensors: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        self.started.set()
        await asyncio.sleep(0)
        raise ValueError("sensor driver bug")

    def close(self) -> None:
        pass


class WatchedRuntime(NodeRuntime):
    """The runtime, with an event the test can wait on for its first alarm."""

    alarmed: asyncio.Event | None = None

    def on_alarm(self, kind: str, detail: str, code: int) -> None:
        super().on_alarm(kind, detail, code)
        if self.alarmed is not None:
            self.alarmed.set()


def _config(data_dir: Path) -> NodeConfig:
    return NodeConfig.model_validate(
        {
            "node": {"id": "rr-01", "kind": "kiosk", "data_dir": str(data_dir)},
            # Nothing listens on port 1: the link keeps retrying, which is all it needs to do.
            "mqtt": {"host": "127.0.0.1", "port": 1, "reconnect_min_s": 0.1},
            "health": {"interval_s": 3600},
            "outbox": {"commit_window_ms": 10},
        }
    )


def test_a_failing_agent_becomes_an_alarm_reading_and_the_node_keeps_running(
    tmp_path: Path,
) -> None:
    agent = BrokenAgent()
    runtime = WatchedRuntime(_config(tmp_path), extra_agents=[agent])

    async def scenario() -> None:
        stop = asyncio.Event()
        runtime.alarmed = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        await asyncio.wait_for(runtime.alarmed.wait(), TIMEOUT_S)
        assert not task.done()
        stop.set()
        await task  # a normal stop: no error raised

    asyncio.run(scenario())
    with Outbox(runtime.outbox.path, node="rr-01") as outbox:
        rows = outbox.due(now=1e12, resend_after=0, limit_readings=100)
    alarms = [r for row in rows for r in json.loads(row.readings_json) if r["m"] == "node_alarm"]
    assert [a["fields"]["kind"] for a in alarms] == ["agent_failed"]
    assert "sensor driver bug" in alarms[0]["fields"]["detail"]
