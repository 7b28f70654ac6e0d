"""The station agent: parked vehicles heard through their adverts on a simulated radio."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from edge.agents.base import AgentContext
from edge.agents.station import StationAgent
from edge.agents.testing import ManualClock, RecordingEmit, wait_until
from edge.config import NodeConfig
from hardware.ble import Radio
from hardware.mobility_adv import COMPANY_ID, MobilityAdvert
from hardware.sim import SimulatedPeripheral, SimulatedRadio

T0 = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
CITY_ID = 0x0ABC


def make_agent(world: SimulatedRadio) -> tuple[StationAgent, RecordingEmit, ManualClock]:
    cfg = NodeConfig.model_validate(
        {
            "node": {"id": "st-01", "kind": "station"},
            "station": {
                "manufacturer_id": CITY_ID,
                "report_interval_s": 60,
                "stale_after_s": 300,
            },
        }
    )
    emit, clock = RecordingEmit(), ManualClock(T0)
    ctx = AgentContext(
        node="st-01",
        config=cfg,
        emit=emit,
        radio=Radio.open("simulated", world=world),
        clock=clock,
    )
    return StationAgent(ctx, check_s=0.005, backoff_min=0.01, backoff_max=0.05), emit, clock


def vehicle(world: SimulatedRadio, n: int, advert: MobilityAdvert | bytes) -> SimulatedPeripheral:
    data = advert if isinstance(advert, bytes) else advert.encode()
    return world.add_peripheral(
        SimulatedPeripheral(
            f"C0:FF:EE:00:01:{n:02X}",
            f"scooter-{n}",
            manufacturer_data={CITY_ID: data},
            advert_interval_s=0.01,
            rssi=-67,
        )
    )


def run_with(agent: StationAgent, body: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await body()
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_arriving_vehicle_is_reported_with_its_state():
    world = SimulatedRadio()
    vehicle(
        world,
        1,
        MobilityAdvert(
            vehicle_id=4242,
            state_of_charge=76,
            odometer_m=123_456,
            speed_kmh=0.0,
            charging=True,
            low_battery=False,
            error_code=17,
        ),
    )
    agent, emit, _clock = make_agent(world)

    async def body() -> None:
        await wait_until(lambda: emit.of("parked_vehicle"))

    run_with(agent, body)
    [arrived] = emit.of("vehicle_arrived")
    parked = emit.of("parked_vehicle")[0]
    assert arrived.tags == parked.tags == {"vehicle": "4242"}
    assert parked.fields == {
        "soc_pct": 76.0,
        "odometer_m": 123456.0,
        "speed_mps": 0.0,
        "in_use": False,
        "charging": True,
        "fault": False,
        "low_battery": False,
        "tamper": False,
        "error_code": 17,
        "rssi_dbm": -67.0,
    }
    assert parked.at == T0


def test_unknown_charge_and_speed_are_left_out():
    world = SimulatedRadio()
    vehicle(world, 1, MobilityAdvert(vehicle_id=9, state_of_charge=None, speed_kmh=None))
    agent, emit, _clock = make_agent(world)

    async def body() -> None:
        await wait_until(lambda: emit.of("parked_vehicle"))

    run_with(agent, body)
    fields = emit.of("parked_vehicle")[0].fields
    assert "soc_pct" not in fields
    assert "speed_mps" not in fields


def test_at_most_one_parked_report_per_interval():
    world = SimulatedRadio()
    vehicle(world, 1, MobilityAdvert(vehicle_id=1, state_of_charge=50))
    agent, emit, clock = make_agent(world)

    async def body() -> None:
        await wait_until(lambda: agent.adverts >= 20)  # many adverts within one interval
        assert len(emit.of("parked_vehicle")) == 1
        clock.advance(60)
        await wait_until(lambda: len(emit.of("parked_vehicle")) == 2)
        seen = agent.adverts
        await wait_until(lambda: agent.adverts >= seen + 20)

    run_with(agent, body)
    assert len(emit.of("parked_vehicle")) == 2
    assert len(emit.of("vehicle_arrived")) == 1


def test_vehicle_not_heard_for_stale_time_has_left():
    world = SimulatedRadio()
    scooter = vehicle(world, 1, MobilityAdvert(vehicle_id=5, state_of_charge=50))
    other = vehicle(world, 2, MobilityAdvert(vehicle_id=6, state_of_charge=90))
    agent, emit, clock = make_agent(world)

    async def body() -> None:
        await wait_until(lambda: len(emit.of("vehicle_arrived")) == 2)
        clock.advance(100)
        await wait_until(lambda: agent.vehicles[5].last_heard == clock())
        scooter.in_range = False  # ridden away
        clock.advance(299)
        await wait_until(lambda: agent.vehicles[6].last_heard == clock())
        assert emit.of("vehicle_left") == []
        clock.advance(1)
        await wait_until(lambda: emit.of("vehicle_left"))

    run_with(agent, body)
    [left] = emit.of("vehicle_left")
    assert left.tags == {"vehicle": "5"}
    assert left.fields == {"present_s": 100.0}
    assert left.at == T0.replace(minute=1, second=40)
    assert 6 in agent.vehicles
    assert other.in_range


def test_bad_adverts_are_counted_not_emitted():
    world = SimulatedRadio()
    newer = MobilityAdvert(vehicle_id=3).encode()
    vehicle(world, 1, bytes([2]) + newer[1:])  # a version this station cannot read
    vehicle(world, 2, b"\x01\x02\x03")  # truncated
    agent, emit, _clock = make_agent(world)

    async def body() -> None:
        await wait_until(lambda: agent.bad_adverts >= 4)

    run_with(agent, body)
    assert emit.readings == []


def test_adverts_of_other_companies_are_ignored():
    world = SimulatedRadio()
    world.add_peripheral(
        SimulatedPeripheral(
            "C0:FF:EE:00:02:01",
            "someone-else",
            manufacturer_data={COMPANY_ID: MobilityAdvert(vehicle_id=77).encode()},
            advert_interval_s=0.01,
        )
    )
    vehicle(world, 1, MobilityAdvert(vehicle_id=1))
    agent, emit, _clock = make_agent(world)

    async def body() -> None:
        await wait_until(lambda: agent.adverts >= 10)

    run_with(agent, body)
    assert {r.tags["vehicle"] for r in emit.readings} == {"1"}
