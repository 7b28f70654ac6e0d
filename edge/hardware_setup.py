"""Opens the hardware a node's agents need: GPIO pins, a BLE radio, or a simulated world.

Only what the config uses is opened, so a station without GPIO pins never asks gpiozero for a
pin factory, and a restroom node without BLE devices never touches BlueZ.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from edge.config import NodeConfig


@dataclass(frozen=True)
class Hardware:
    """Pins and radio for the agents, and the scenario that drives them when simulated."""

    pin_factory: Any | None
    radio: Any | None
    simulation: Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None = None


def needs_gpio(config: NodeConfig) -> bool:
    kind = config.node.kind
    if kind == "restroom":
        r = config.restroom
        return bool(r.stalls) or r.help_button_pin is not None
    return kind == "vehicle" and config.mobility.hall_pin is not None


def needs_ble(config: NodeConfig) -> bool:
    kind = config.node.kind
    if kind == "restroom":
        return bool(config.restroom.health_devices)
    if kind == "vehicle":
        return bool(config.mobility.gatt_address)
    return kind == "station"


def open_hardware(config: NodeConfig) -> Hardware:
    """Open what the config needs; simulated when ``simulation.enabled``."""
    if config.simulation.enabled:
        from edge.simulation import make_simulated_hardware, run_simulation

        sim_pins, sim_radio, world = make_simulated_hardware(config)

        async def simulate(stop: asyncio.Event) -> None:
            await run_simulation(config, sim_pins, world, stop)

        return Hardware(pin_factory=sim_pins, radio=sim_radio, simulation=simulate)
    pins: Any | None = None
    radio: Any | None = None
    if needs_gpio(config):
        from hardware.gpio import pin_factory

        pins = pin_factory(config.gpio.pin_factory)
    if needs_ble(config):
        from hardware.ble import Radio

        radio = Radio.open(config.ble.backend, adapter=config.ble.adapter)
    return Hardware(pin_factory=pins, radio=radio)
