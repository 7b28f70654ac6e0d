"""The restroom agent's BLE side: health-check devices through a simulated radio."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from edge.agents.base import AgentContext
from edge.agents.restroom import RestroomAgent
from edge.agents.testing import ManualClock, RecordingEmit, wait_until
from edge.config import NodeConfig
from hardware.ble import Radio
from hardware.gatt import (
    MeasurementStatus,
    encode_blood_pressure_measurement,
    encode_temperature_measurement,
    encode_weight_measurement,
)
from hardware.sim import SimulatedPeripheral, SimulatedRadio

T0 = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
SCALE, CUFF, THERMO = "C0:FF:EE:00:00:01", "C0:FF:EE:00:00:02", "C0:FF:EE:00:00:03"


def make_world() -> tuple[SimulatedRadio, dict[str, SimulatedPeripheral]]:
    world = SimulatedRadio()
    devices = {
        "scale": world.add_peripheral(
            SimulatedPeripheral(SCALE, "scale", characteristics={"2a9d": b"\x00\x00\x00"})
        ),
        "blood_pressure": world.add_peripheral(
            SimulatedPeripheral(CUFF, "cuff", characteristics={"2a35": b"\x00" * 7})
        ),
        "thermometer": world.add_peripheral(
            SimulatedPeripheral(THERMO, "thermo", characteristics={"2a1c": b"\x00" * 5})
        ),
    }
    return world, devices


def make_agent(world: SimulatedRadio) -> tuple[RestroomAgent, RecordingEmit, ManualClock]:
    cfg = NodeConfig.model_validate(
        {
            "node": {"id": "rr-01", "kind": "restroom"},
            "ble": {"backend": "simulated"},
            "restroom": {
                "health_devices": [
                    {"address": SCALE, "kind": "scale"},
                    {"address": CUFF, "kind": "blood_pressure"},
                    {"address": THERMO, "kind": "thermometer"},
                ]
            },
        }
    )
    emit, clock = RecordingEmit(), ManualClock(T0)
    ctx = AgentContext(
        node="rr-01",
        config=cfg,
        emit=emit,
        radio=Radio.open("simulated", world=world),
        clock=clock,
    )
    agent = RestroomAgent(ctx, bounce_s=None, backoff_min=0.01, backoff_max=0.05)
    return agent, emit, clock


def run_with(agent: RestroomAgent, body: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await wait_until(
                lambda: len(agent.links) == 3 and all(x.is_connected for x in agent.links)
            )
            await body()
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_scale_measurement_becomes_an_anonymous_health_check():
    world, devices = make_world()
    agent, emit, _clock = make_agent(world)
    measured = T0 - timedelta(minutes=2)

    async def body() -> None:
        payload = encode_weight_measurement(
            weight=62.5, at=measured, user_id=3, bmi=22.1, height=1.68
        )
        devices["scale"].notify("2a9d", payload)
        await wait_until(lambda: emit.of("health_check"))

    run_with(agent, body)
    [check] = emit.of("health_check")
    assert check.tags == {"device": "scale"}
    assert check.fields == {"weight_kg": 62.5, "bmi": 22.1, "height_m": 1.68}
    assert "user_id" not in check.fields
    assert SCALE not in str(check.model_dump())
    assert check.at == measured  # the device's own time stamp


def test_blood_pressure_and_temperature_carry_exact_values_and_no_user():
    world, devices = make_world()
    agent, emit, _clock = make_agent(world)

    async def body() -> None:
        devices["blood_pressure"].notify(
            "2a35",
            encode_blood_pressure_measurement(
                systolic=128,
                diastolic=84,
                mean_arterial=99,
                pulse_bpm=72,
                user_id=1,
                status=MeasurementStatus(irregular_pulse=True),
            ),
        )
        devices["thermometer"].notify(
            "2a1c", encode_temperature_measurement(temperature=36.6, temperature_type="ear")
        )
        await wait_until(lambda: len(emit.of("health_check")) == 2)

    run_with(agent, body)
    by_kind = {r.tags["device"]: r for r in emit.of("health_check")}
    bp = by_kind["blood_pressure"]
    assert bp.fields["systolic_mmhg"] == 128
    assert bp.fields["diastolic_mmhg"] == 84
    assert bp.fields["pulse_bpm"] == 72
    assert bp.fields["irregular_pulse"] is True
    assert "user_id" not in bp.fields
    assert bp.at == T0  # no device time stamp: the time it arrived
    thermo = by_kind["thermometer"]
    assert thermo.fields == {"temperature_c": pytest.approx(36.6), "temperature_type": "ear"}


def test_malformed_payload_is_counted_and_not_emitted():
    world, devices = make_world()
    agent, emit, _clock = make_agent(world)

    async def body() -> None:
        devices["scale"].notify("2a9d", b"\x00\x10")  # truncated weight
        devices["scale"].notify("2a9d", b"\x00\xff\xff")  # "measurement unsuccessful"
        await wait_until(lambda: agent.decode_errors == 2)
        devices["scale"].notify("2a9d", encode_weight_measurement(weight=70.0))
        await wait_until(lambda: emit.of("health_check"))

    run_with(agent, body)
    assert agent.decode_errors == 2
    assert [r.fields for r in emit.of("health_check")] == [{"weight_kg": 70.0}]


def test_device_with_an_unset_clock_is_dated_on_arrival():
    world, devices = make_world()
    agent, emit, _clock = make_agent(world)

    async def body() -> None:
        stale = datetime(2000, 1, 1, tzinfo=UTC)  # a scale that lost its clock
        devices["scale"].notify("2a9d", encode_weight_measurement(weight=70.0, at=stale))
        await wait_until(lambda: emit.of("health_check"))

    run_with(agent, body)
    assert emit.of("health_check")[0].at == T0


def test_health_device_reconnects_after_it_drops_the_link():
    world, devices = make_world()
    agent, emit, _clock = make_agent(world)

    async def body() -> None:
        scale_link = agent.links[0]
        devices["scale"].disconnect()
        await wait_until(lambda: scale_link.connects == 2 and scale_link.is_connected)
        devices["scale"].notify("2a9d", encode_weight_measurement(weight=55.0))
        await wait_until(lambda: emit.of("health_check"))

    run_with(agent, body)
    assert emit.of("health_check")[0].fields == {"weight_kg": 55.0}
