"""Simulated sensors for a node: mock pins, a simulated radio, and the scenario its kind plays.

With ``simulation.enabled``, the runtime builds the node's hardware with
:func:`make_simulated_hardware` instead of opening real GPIO and BlueZ, hands the pin factory and
radio to the agents as usual, and runs :func:`run_simulation` next to them. The agents cannot
tell: they get gpiozero's ``MockFactory`` pins and bleak's own scanner and client types.

Example::

    cfg = NodeConfig.model_validate({"node": {"id": "mv-07", "kind": "vehicle"},
        "simulation": {"enabled": True, "speed": 30},
        "mobility": {"gatt_address": "C0:FF:EE:00:00:07"}})
    factory, radio, world = make_simulated_hardware(cfg)
    stop = asyncio.Event()
    await run_simulation(cfg, factory, world, stop)   # next to the agents, until stop
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import Any

import structlog
from gpiozero.pins.mock import MockFactory

from edge.config import NodeConfig
from hardware.ble import Radio
from hardware.sim import SimulatedPeripheral, SimulatedRadio, scenarios

log = structlog.get_logger(__name__)


def make_simulated_hardware(config: NodeConfig) -> tuple[MockFactory, Radio, SimulatedRadio]:
    """Mock pins, a simulated radio and its world, with the peripherals the config names.

    A restroom gets one simulated device per ``restroom.health_devices`` entry and a vehicle a
    sensor hub at ``mobility.gatt_address``; a station's vehicles are added by its scenario.
    """
    factory = MockFactory()
    world = SimulatedRadio(speed=config.simulation.speed)
    kind = config.node.kind
    if kind == "restroom":
        for device in config.restroom.health_devices:
            world.add_peripheral(
                SimulatedPeripheral(
                    device.address,
                    f"{device.kind}-sim",
                    characteristics=scenarios.health_characteristics(device.kind),
                )
            )
    elif kind == "vehicle" and config.mobility.gatt_address:
        world.add_peripheral(
            SimulatedPeripheral(
                config.mobility.gatt_address,
                f"hub-{config.mobility.vehicle_id}",
                characteristics=scenarios.hub_characteristics(),
            )
        )
    radio = Radio.open("simulated", config.ble.adapter, world=world)
    return factory, radio, world


def scenario_tasks(
    config: NodeConfig, factory: Any, world: SimulatedRadio, stop: asyncio.Event
) -> list[Coroutine[Any, Any, None]]:
    """The scenario coroutines a node's config calls for (none for a kiosk)."""
    sim = config.simulation
    seeds = random.Random(sim.seed)

    def rng() -> random.Random:
        # One generator per scenario, so that adding a stall does not change the others' day.
        return random.Random(seeds.getrandbits(64))

    common: dict[str, Any] = {"speed": sim.speed, "stop": stop}
    kind = config.node.kind
    out: list[Coroutine[Any, Any, None]] = []
    if kind == "restroom":
        rr = config.restroom
        for stall in rr.stalls:
            out.append(
                scenarios.restroom_stall(
                    factory,
                    door_pin=stall.door_pin,
                    pir_pin=stall.pir_pin,
                    door_closed_when_active=stall.door_closed_when_active,
                    rng=rng(),
                    **common,
                )
            )
        if rr.help_button_pin is not None:
            out.append(scenarios.help_calls(factory, pin=rr.help_button_pin, rng=rng(), **common))
        devices = [(world.peripheral(d.address), d.kind) for d in rr.health_devices]
        if devices:
            out.append(scenarios.health_checks(devices, rng=rng(), **common))
    elif kind == "vehicle":
        mob = config.mobility
        hub = world.peripheral(mob.gatt_address) if mob.gatt_address else None
        if hub is not None or mob.hall_pin is not None:
            out.append(
                scenarios.vehicle_rides(
                    hub=hub,
                    factory=factory,
                    hall_pin=mob.hall_pin,
                    pulses_per_revolution=mob.pulses_per_revolution,
                    wheel_circumference_m=mob.wheel_circumference_mm / 1000.0,
                    rng=rng(),
                    **common,
                )
            )
    elif kind == "station":
        out.append(
            scenarios.station_fleet(
                world, manufacturer_id=config.station.manufacturer_id, rng=rng(), **common
            )
        )
    return out


async def run_simulation(
    config: NodeConfig, factory: Any, world: SimulatedRadio, stop: asyncio.Event
) -> None:
    """Play the node's scenario on ``factory``'s pins and ``world``'s peripherals until stop."""
    tasks = scenario_tasks(config, factory, world, stop)
    log.info(
        "simulation_started",
        node=config.node.id,
        kind=config.node.kind,
        scenarios=len(tasks),
        seed=config.simulation.seed,
        speed=config.simulation.speed,
    )
    if not tasks:
        await stop.wait()
        return
    await asyncio.gather(*tasks)
