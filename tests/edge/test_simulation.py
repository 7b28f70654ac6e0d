"""Simulated nodes: the scenarios drive mock pins and a simulated radio, and agents read them."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from edge.agents.base import AgentContext, build_agents
from edge.agents.geo import distance_m
from edge.agents.testing import RecordingEmit, wait_until
from edge.config import NodeConfig
from edge.simulation import make_simulated_hardware, run_simulation, scenario_tasks
from hardware.gatt import decoder_for
from hardware.sim import scenarios

HUB = "C0:FF:EE:00:00:07"
SCALE, CUFF = "C0:FF:EE:00:00:01", "C0:FF:EE:00:00:02"


def config(kind: str, speed: float, **sections) -> NodeConfig:
    return NodeConfig.model_validate(
        {
            "node": {"id": f"{kind[:2]}-01", "kind": kind},
            "gpio": {"pin_factory": "mock"},
            "ble": {"backend": "simulated"},
            "simulation": {"enabled": True, "seed": 7, "speed": speed},
            **sections,
        }
    )


def simulate(cfg: NodeConfig, done: Callable[[RecordingEmit], object]) -> RecordingEmit:
    """Run the node's agents against its simulation until ``done(emit)`` holds."""
    emit = RecordingEmit()

    async def main() -> None:
        factory, radio, world = make_simulated_hardware(cfg)
        ctx = AgentContext(
            node=cfg.node.id, config=cfg, emit=emit, pin_factory=factory, radio=radio
        )
        stop = asyncio.Event()
        agents = build_agents(ctx)
        tasks = [asyncio.create_task(a.run(stop)) for a in agents]
        tasks.append(asyncio.create_task(run_simulation(cfg, factory, world, stop)))
        try:
            await wait_until(lambda: done(emit), within=60.0)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            for agent in agents:
                agent.close()

    asyncio.run(main())
    return emit


def test_simulated_restroom_produces_visits_occupancy_and_health_checks():
    cfg = config(
        "restroom",
        3000,
        restroom={
            "stalls": [{"name": "1", "door_pin": 17, "pir_pin": 27}],
            "help_button_pin": 22,
            "occupancy_interval_s": 0.2,
            "health_devices": [
                {"address": SCALE, "kind": "scale"},
                {"address": CUFF, "kind": "blood_pressure"},
            ],
        },
        health={"interval_s": 0.5},
    )

    def done(emit: RecordingEmit) -> bool:
        ends = [r for r in emit.of("visit") if r.fields["event"] == "end"]
        motion = [r for r in emit.of("occupancy") if float(r.fields.get("motion_count", 0)) > 0]
        return bool(ends and motion and emit.of("health_check"))

    emit = simulate(cfg, done)
    assert emit.of("visit")[0].fields["event"] == "start"
    assert all("user_id" not in r.fields for r in emit.of("health_check"))
    assert emit.of("node_health")


def test_simulated_vehicle_rides_trips_around_tsukuba():
    cfg = config(
        "vehicle",
        600,
        mobility={
            "gatt_address": HUB,
            "coarsen_m": 100,
            "trip_idle_s": 0.3,
            "sample_interval_s": 0.05,
        },
    )

    def done(emit: RecordingEmit) -> bool:
        return len(emit.of("trip")) >= 2 and bool(emit.of("ride"))

    emit = simulate(cfg, done)
    assert [r.fields["event"] for r in emit.of("trip")[:2]] == ["start", "end"]
    assert float(emit.of("trip")[1].fields["distance_m"]) > 0
    ride = next(r for r in emit.of("ride") if "lat" in r.fields)
    lat, lon = float(ride.fields["lat"]), float(ride.fields["lon"])
    assert distance_m(lat, lon, *scenarios.TSUKUBA_STATION) < 3000
    assert 0 < float(ride.fields["battery_pct"]) <= 100


def test_simulated_station_hears_parked_vehicles():
    cfg = config("station", 30, station={"report_interval_s": 60, "stale_after_s": 300})

    def done(emit: RecordingEmit) -> bool:
        return len(emit.of("parked_vehicle")) >= 2

    emit = simulate(cfg, done)
    arrived = {r.tags["vehicle"] for r in emit.of("vehicle_arrived")}
    parked = {r.tags["vehicle"] for r in emit.of("parked_vehicle")}
    assert parked <= arrived
    assert all(1001 <= int(v) <= 1006 for v in arrived)


def test_simulated_hall_sensor_vehicle_counts_wheel_pulses():
    cfg = config(
        "vehicle",
        600,
        mobility={"hall_pin": 6, "trip_idle_s": 0.3, "sample_interval_s": 0.05},
    )
    emit = simulate(cfg, lambda emit: emit.of("ride"))
    assert float(emit.of("ride")[0].fields["trip_distance_m"]) > 0


def test_kiosk_simulation_plays_nothing_and_stops():
    cfg = config("kiosk", 10)
    factory, _radio, world = make_simulated_hardware(cfg)
    stop = asyncio.Event()
    assert scenario_tasks(cfg, factory, world, stop) == []

    async def main() -> None:
        task = asyncio.create_task(run_simulation(cfg, factory, world, stop))
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_hardware_has_the_peripherals_the_config_names():
    cfg = config(
        "restroom",
        1,
        restroom={"health_devices": [{"address": SCALE, "kind": "scale"}]},
    )
    _factory, radio, world = make_simulated_hardware(cfg)
    [scale] = world.peripherals
    assert scale.address == SCALE
    decoded = decoder_for("2a9d")(scale.value("2a9d"))
    assert float(decoded.fields["weight_kg"]) > 0
    assert radio.world is world


@pytest.mark.parametrize("kind", ["scale", "blood_pressure", "thermometer"])
def test_same_seed_plays_the_same_measurements(kind):
    now = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    first = [scenarios.health_payload(kind, random.Random(3), now) for _ in range(2)]
    assert first[0] == first[1]
    decoded = decoder_for(scenarios.HEALTH_UUIDS[kind])(first[0])
    assert decoded.fields


def test_scenarios_refuse_a_speed_that_is_not_positive():
    async def main() -> None:
        await scenarios.help_calls(None, pin=1, rng=random.Random(1), speed=0, stop=asyncio.Event())

    with pytest.raises(ValueError, match="speed"):
        asyncio.run(main())
