"""Simulated hardware: a world of BLE peripherals behind bleak's own backend interfaces.

Code under test keeps using ``bleak.BleakScanner`` and ``bleak.BleakClient``; with
``backend=SimulatedScanner`` / ``backend=SimulatedClient`` they deliver real ``BLEDevice``,
``AdvertisementData`` and GATT objects from a :class:`SimulatedRadio`.

Example::

    from hardware.sim import SimulatedPeripheral, SimulatedRadio, set_current_world

    world = SimulatedRadio()
    previous = set_current_world(world)
    door = world.add_peripheral(SimulatedPeripheral("C0:FF:EE:00:00:01", "door-1"))
    ...
    set_current_world(previous)
"""

from hardware.sim.client import SimulatedClient
from hardware.sim.radio import (
    DEFAULT_SERVICE_UUID,
    SimulatedPeripheral,
    SimulatedRadio,
    current_world,
    set_current_world,
)
from hardware.sim.scanner import SimulatedScanner

__all__ = [
    "DEFAULT_SERVICE_UUID",
    "SimulatedClient",
    "SimulatedPeripheral",
    "SimulatedRadio",
    "SimulatedScanner",
    "current_world",
    "set_current_world",
]
