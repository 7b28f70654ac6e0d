"""GattLink: a GATT connection that reads, subscribes, and comes back after every loss."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from bleak.exc import BleakCharacteristicNotFoundError, BleakDeviceNotFoundError

from hardware.ble import GattLink, Radio
from hardware.errors import BleError
from hardware.sim import SimulatedPeripheral, SimulatedRadio

Waiter = Callable[..., Any]

ADDRESS = "C0:FF:EE:00:00:01"
BATTERY = "2a19"
TEMPERATURE = "2a6e"


def thermometer(world: SimulatedRadio) -> SimulatedPeripheral:
    return world.add_peripheral(
        SimulatedPeripheral(
            ADDRESS,
            "thermo-1",
            characteristics={BATTERY: b"\x64", TEMPERATURE: b"\x00\x00"},
        )
    )


class Recorder:
    """Payload handlers that keep what they were given."""

    def __init__(self) -> None:
        self.battery: list[bytes] = []
        self.temperature: list[bytes] = []

    def link(self, radio: Radio, **options: Any) -> GattLink:
        return GattLink(
            radio,
            ADDRESS,
            notify={TEMPERATURE: self.temperature.append},
            read_on_connect={BATTERY: self.battery.append},
            **options,
        )


def test_link_reads_on_connect_and_passes_notifications_on_as_bytes(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    peripheral = thermometer(sim_radio)
    got = Recorder()
    link = got.link(Radio.open("simulated"))

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(link.run(stop))
        await wait_until(lambda: link.is_connected, what="connected")
        assert got.battery == [b"\x64"]
        peripheral.notify(TEMPERATURE, b"\x10\x09")
        peripheral.notify(TEMPERATURE, b"\x11\x09")
        await wait_until(lambda: len(got.temperature) == 2, what="two notifications")
        stop.set()
        await asyncio.wait_for(running, 10)

    asyncio.run(main())
    assert got.temperature == [b"\x10\x09", b"\x11\x09"]
    assert all(type(p) is bytes for p in got.temperature)
    assert (link.connects, link.failures) == (1, 0)


def test_link_survives_a_dropped_connection_and_reconnects(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    peripheral = thermometer(sim_radio)
    got = Recorder()
    link = got.link(Radio.open("simulated"), backoff_min=0.01, backoff_max=0.05)

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(link.run(stop))
        await wait_until(lambda: link.connects == 1 and link.is_connected, what="connected")
        peripheral.disconnect()
        await wait_until(lambda: not link.is_connected, what="link down")
        await wait_until(lambda: link.connects == 2 and link.is_connected, what="reconnected")
        peripheral.notify(TEMPERATURE, b"\x12\x09")
        await wait_until(lambda: got.temperature == [b"\x12\x09"], what="notification")
        stop.set()
        await asyncio.wait_for(running, 10)

    asyncio.run(main())
    assert got.battery == [b"\x64", b"\x64"]  # read again on the new connection


def test_link_backs_off_within_bounds_while_out_of_range(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    peripheral = thermometer(sim_radio)
    peripheral.in_range = False
    link = Recorder().link(Radio.open("simulated"), backoff_min=0.01, backoff_max=0.04)

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(link.run(stop))
        await wait_until(lambda: link.failures >= 5, what="five failed attempts")
        assert link.connects == 0
        assert not link.is_connected
        peripheral.in_range = True
        await wait_until(lambda: link.is_connected, what="connected once in range")
        stop.set()
        await asyncio.wait_for(running, 10)

    asyncio.run(main())
    delays = link.recent_delays
    assert len(delays) == link.failures
    assert all(0.01 <= d <= 0.04 for d in delays)
    assert list(delays) == sorted(delays)  # exponential growth, jitter never reorders
    assert delays[-1] == 0.04  # capped at backoff_max
    assert isinstance(link.last_error, BleakDeviceNotFoundError)
    assert link.connects == 1


def test_stop_disconnects_and_returns(sim_radio: SimulatedRadio, wait_until: Waiter) -> None:
    peripheral = thermometer(sim_radio)
    link = Recorder().link(Radio.open("simulated"))

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(link.run(stop))
        await wait_until(lambda: peripheral.is_connected, what="connected")
        stop.set()
        await asyncio.wait_for(running, 10)

    asyncio.run(main())
    assert not peripheral.is_connected
    assert not link.is_connected


def test_stop_while_backing_off_returns_at_once(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    thermometer(sim_radio).in_range = False
    link = Recorder().link(Radio.open("simulated"), backoff_min=3600, backoff_max=3600)

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(link.run(stop))
        await wait_until(lambda: link.failures == 1, what="first failure")
        stop.set()
        await asyncio.wait_for(running, 10)

    asyncio.run(main())
    assert link.recent_delays == (3600,)


def test_missing_characteristic_counts_as_failure_and_leaves_no_connection(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    peripheral = thermometer(sim_radio)
    link = GattLink(
        Radio.open("simulated"),
        ADDRESS,
        notify={"2a37": lambda payload: None},
        backoff_min=0.01,
        backoff_max=0.02,
    )

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(link.run(stop))
        await wait_until(lambda: link.failures >= 2, what="two failures")
        stop.set()
        await asyncio.wait_for(running, 10)

    asyncio.run(main())
    assert link.connects == 0
    assert isinstance(link.last_error, BleakCharacteristicNotFoundError)
    assert not peripheral.is_connected


def test_a_failing_handler_does_not_drop_the_link(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    peripheral = thermometer(sim_radio)
    seen: list[bytes] = []

    def fragile(payload: bytes) -> None:
        seen.append(payload)
        raise ValueError("cannot decode")

    link = GattLink(Radio.open("simulated"), ADDRESS, notify={TEMPERATURE: fragile})

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(link.run(stop))
        await wait_until(lambda: link.is_connected, what="connected")
        peripheral.notify(TEMPERATURE, b"\xff")
        peripheral.notify(TEMPERATURE, b"\xfe")
        await wait_until(lambda: len(seen) == 2, what="both notifications")
        assert link.is_connected
        stop.set()
        await asyncio.wait_for(running, 10)

    asyncio.run(main())
    assert (link.connects, link.failures) == (1, 0)


def test_bad_options_are_refused_naming_them() -> None:
    radio = Radio.open("simulated", world=SimulatedRadio())
    with pytest.raises(BleError, match="backoff_max"):
        GattLink(radio, ADDRESS, notify={}, backoff_min=5, backoff_max=1)
    with pytest.raises(BleError, match="'temperature' is not a characteristic UUID"):
        GattLink(radio, ADDRESS, notify={"temperature": lambda payload: None})


def test_a_link_runs_only_once_at_a_time(sim_radio: SimulatedRadio, wait_until: Waiter) -> None:
    thermometer(sim_radio)
    link = Recorder().link(Radio.open("simulated"))

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(link.run(stop))
        await wait_until(lambda: link.is_connected, what="connected")
        with pytest.raises(BleError, match="already running"):
            await link.run(stop)
        stop.set()
        await asyncio.wait_for(running, 10)

    asyncio.run(main())
