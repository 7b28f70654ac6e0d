"""The node health agent: what a node reports about itself."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.agents import health
from edge.agents.base import AgentContext
from edge.agents.health import NodeHealthAgent
from edge.agents.testing import ManualClock, RecordingEmit, wait_until
from edge.config import NodeConfig

T0 = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


@dataclass(frozen=True)
class FakeOutboxStats:
    node: str = "k-01"
    stream: str = "abcdef0123456789"
    last_seq: int = 12
    pending_rows: int = 3
    pending_readings: int = 250
    oldest_pending_at: float | None = T0.timestamp() - 42.0
    produced: int = 1000
    sent: int = 900
    receipted: int = 750
    dropped: int = 2


def make_agent(tmp_path: Path, **ctx_kw) -> tuple[NodeHealthAgent, RecordingEmit]:
    cfg = NodeConfig.model_validate(
        {
            "node": {"id": "k-01", "kind": "kiosk", "data_dir": str(tmp_path / "not-yet")},
            "health": {"interval_s": 0.01},
        }
    )
    emit = RecordingEmit()
    ctx = AgentContext(node="k-01", config=cfg, emit=emit, clock=ManualClock(T0), **ctx_kw)
    return NodeHealthAgent(ctx), emit


def test_health_reading_carries_outbox_and_link_counters(tmp_path):
    agent, emit = make_agent(
        tmp_path,
        outbox_stats=FakeOutboxStats,
        link_stats=lambda: {"connected": True, "reconnects": 4, "state": "up"},
    )
    assert agent.sample()
    [reading] = emit.of("node_health")
    f = reading.fields
    assert reading.at == T0
    assert f["outbox_rows"] == 3
    assert f["outbox_readings"] == 250
    assert f["oldest_pending_age_s"] == pytest.approx(42.0)
    assert (f["produced"], f["sent"], f["receipted"], f["dropped"]) == (1000, 900, 750, 2)
    assert f["link_connected"] is True
    assert f["link_reconnects"] == 4
    assert "link_state" not in f  # only numbers and booleans are copied


def test_health_reading_describes_the_machine(tmp_path):
    agent, emit = make_agent(tmp_path)
    agent.sample()
    f = emit.of("node_health")[0].fields
    # The data dir does not exist yet: the free space of the disk it will be on is reported.
    assert isinstance(f["disk_free_bytes"], int)
    assert f["disk_free_bytes"] > 0
    assert isinstance(f["load1"], float)
    assert isinstance(f["uptime_s"], float)
    assert f["uptime_s"] >= 0
    assert float(f["system_uptime_s"]) >= float(f["uptime_s"])
    assert isinstance(f["rss_bytes"], int)
    assert f["rss_bytes"] > 1_000_000


def test_cpu_temperature_read_from_thermal_zone_when_present(tmp_path, monkeypatch):
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    monkeypatch.setattr(health, "THERMAL_ZONE", zone)
    agent, emit = make_agent(tmp_path)
    agent.sample()
    assert emit.of("node_health")[0].fields["cpu_temp_c"] == pytest.approx(48.312)


def test_cpu_temperature_left_out_without_thermal_zone(tmp_path, monkeypatch):
    monkeypatch.setattr(health, "THERMAL_ZONE", tmp_path / "no-such-zone")
    agent, emit = make_agent(tmp_path)
    agent.sample()
    assert "cpu_temp_c" not in emit.of("node_health")[0].fields


def test_no_pending_rows_reports_zero_age(tmp_path):
    agent, emit = make_agent(
        tmp_path, outbox_stats=lambda: FakeOutboxStats(pending_rows=0, oldest_pending_at=None)
    )
    agent.sample()
    assert emit.of("node_health")[0].fields["oldest_pending_age_s"] == 0.0


def test_broken_outbox_does_not_stop_health_reports(tmp_path):
    def broken() -> FakeOutboxStats:
        raise OSError("disk I/O error")

    agent, emit = make_agent(tmp_path, outbox_stats=broken)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await wait_until(lambda: len(emit.of("node_health")) >= 3)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert all("outbox_rows" not in r.fields for r in emit.of("node_health"))
    assert all("disk_free_bytes" in r.fields for r in emit.of("node_health"))


def test_health_agent_emits_on_the_loop_thread_and_stops(tmp_path):
    agent, emit = make_agent(tmp_path, outbox_stats=FakeOutboxStats)

    async def main() -> int:
        import threading

        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await wait_until(lambda: len(emit.readings) >= 2)
        stop.set()
        await asyncio.wait_for(task, 5)
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert emit.threads == {loop_thread}
