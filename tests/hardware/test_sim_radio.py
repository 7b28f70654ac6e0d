"""The simulated radio behind bleak's own front: real bleak types, BlueZ-like behaviour."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from bleak.args.bluez import OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakBluetoothNotAvailableError, BleakDeviceNotFoundError, BleakError

from hardware.errors import BleError
from hardware.sim import (
    SimulatedClient,
    SimulatedPeripheral,
    SimulatedRadio,
    SimulatedScanner,
    current_world,
)

Adverts = list[tuple[BLEDevice, AdvertisementData]]
Waiter = Callable[..., Any]

DOOR = "C0:FF:EE:00:00:01"
SCALE = "C0:FF:EE:00:00:02"


def door(**kwargs: Any) -> SimulatedPeripheral:
    options: dict[str, Any] = {
        "manufacturer_data": {0x0D4A: b"\x01\x02\x03"},
        "advert_interval_s": 0.02,
        "rssi": -71,
        "characteristics": {"2a19": b"\x64", "2a6e": b"\x00\x00"},
    }
    options.update(kwargs)
    return SimulatedPeripheral(DOOR, "door-1", **options)


def test_fixture_makes_the_world_current(sim_radio: SimulatedRadio) -> None:
    assert current_world() is sim_radio


def test_scanner_delivers_exact_manufacturer_data_as_bleak_types(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    sim_radio.add_peripheral(door())
    heard: Adverts = []

    async def main() -> BleakScanner:
        scanner = BleakScanner(lambda d, a: heard.append((d, a)), backend=SimulatedScanner)
        async with scanner:
            await wait_until(lambda: len(heard) >= 1, what="first advert")
        return scanner

    scanner = asyncio.run(main())
    device, advert = heard[0]
    assert type(device) is BLEDevice
    assert type(advert) is AdvertisementData
    assert device.address == DOOR
    assert device.name == "door-1"
    assert advert.manufacturer_data == {0x0D4A: b"\x01\x02\x03"}
    assert advert.local_name == "door-1"
    assert advert.rssi == -71
    assert set(scanner.discovered_devices_and_advertisement_data) == {DOOR}


def test_set_advert_changes_what_scanners_hear(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    peripheral = sim_radio.add_peripheral(door(advert_interval_s=3600))
    heard: Adverts = []

    async def main() -> None:
        async with BleakScanner(lambda d, a: heard.append((d, a)), backend=SimulatedScanner):
            await wait_until(lambda: len(heard) == 1, what="first advert")
            peripheral.set_advert(manufacturer_data={0x0D4A: b"\x09"})
            await wait_until(lambda: len(heard) == 2, what="changed advert")

    asyncio.run(main())
    assert [a.manufacturer_data for _, a in heard] == [{0x0D4A: b"\x01\x02\x03"}, {0x0D4A: b"\x09"}]


def test_world_speed_makes_slow_peripherals_advertise_often(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    sim_radio.speed = 3600 * 50
    sim_radio.add_peripheral(door(advert_interval_s=3600))
    heard: Adverts = []

    async def main() -> None:
        async with BleakScanner(lambda d, a: heard.append((d, a)), backend=SimulatedScanner):
            await wait_until(lambda: len(heard) >= 5, what="five adverts of an hourly beacon")

    asyncio.run(main())
    assert {d.address for d, _ in heard} == {DOOR}


def test_passive_scan_without_or_patterns_is_refused_as_on_bluez(
    sim_radio: SimulatedRadio,
) -> None:
    with pytest.raises(BleakError, match="or_patterns"):
        BleakScanner(lambda d, a: None, scanning_mode="passive", backend=SimulatedScanner)


def test_passive_scan_hears_only_adverts_matching_its_patterns(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    sim_radio.add_peripheral(door())
    sim_radio.add_peripheral(
        SimulatedPeripheral(
            SCALE, "scale", manufacturer_data={0x004C: b"\x02"}, advert_interval_s=0.02
        )
    )
    heard: Adverts = []
    pattern = OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\x4a\x0d")

    async def main() -> None:
        scanner = BleakScanner(
            lambda d, a: heard.append((d, a)),
            scanning_mode="passive",
            bluez={"or_patterns": [pattern]},
            backend=SimulatedScanner,
        )
        async with scanner:
            await wait_until(lambda: len(heard) >= 5, what="five adverts")

    asyncio.run(main())
    assert {d.address for d, _ in heard} == {DOOR}


def test_out_of_range_peripheral_falls_silent_and_refuses_connections(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    peripheral = sim_radio.add_peripheral(door())
    heard: Adverts = []

    async def main() -> None:
        async with BleakScanner(lambda d, a: heard.append((d, a)), backend=SimulatedScanner):
            await wait_until(lambda: len(heard) >= 1, what="first advert")
            peripheral.in_range = False
            count = len(heard)
            # Another peripheral keeps advertising: wait for several of its adverts.
            sim_radio.add_peripheral(SimulatedPeripheral(SCALE, advert_interval_s=0.01))
            await wait_until(
                lambda: sum(d.address == SCALE for d, _ in heard) >= 5, what="other adverts"
            )
            assert sum(d.address == DOOR for d, _ in heard) == count
            with pytest.raises(BleakDeviceNotFoundError):
                await BleakClient(DOOR, backend=SimulatedClient).connect()

    asyncio.run(main())


def test_client_reads_and_receives_notifications_as_bleak_types(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    peripheral = sim_radio.add_peripheral(door())
    notified: list[tuple[BleakGATTCharacteristic, bytearray]] = []

    async def main() -> None:
        async with BleakClient(DOOR, backend=SimulatedClient) as client:
            assert isinstance(client.services, BleakGATTServiceCollection)
            assert all(isinstance(s, BleakGATTService) for s in client.services)
            assert await client.read_gatt_char("2a19") == bytearray(b"\x64")
            peripheral.set_value("2a19", b"\x63")
            assert await client.read_gatt_char("00002a19-0000-1000-8000-00805f9b34fb") == b"\x63"
            await client.start_notify("2a6e", lambda c, d: notified.append((c, d)))
            assert peripheral.notify("2a6e", b"\x10\x09") == 1
            await wait_until(lambda: len(notified) == 1, what="notification")

    asyncio.run(main())
    characteristic, data = notified[0]
    assert isinstance(characteristic, BleakGATTCharacteristic)
    assert characteristic.uuid == "00002a6e-0000-1000-8000-00805f9b34fb"
    assert type(data) is bytearray
    assert data == b"\x10\x09"
    assert peripheral.value("2a6e") == b"\x10\x09"
    assert not peripheral.is_connected


def test_client_writes_reach_the_peripheral(sim_radio: SimulatedRadio) -> None:
    peripheral = sim_radio.add_peripheral(door())

    async def main() -> None:
        async with BleakClient(DOOR, backend=SimulatedClient) as client:
            await client.write_gatt_char("2a19", b"\x01", response=True)

    asyncio.run(main())
    assert peripheral.writes == [("00002a19-0000-1000-8000-00805f9b34fb", b"\x01")]


def test_peripheral_disconnect_fires_the_clients_disconnected_callback(
    sim_radio: SimulatedRadio,
) -> None:
    peripheral = sim_radio.add_peripheral(door())

    async def main() -> tuple[BleakClient, BleakClient]:
        dropped: asyncio.Queue[BleakClient] = asyncio.Queue()
        client = BleakClient(DOOR, dropped.put_nowait, backend=SimulatedClient)
        await client.connect()
        assert peripheral.is_connected
        peripheral.disconnect()
        lost = await asyncio.wait_for(dropped.get(), 10)
        assert not client.is_connected
        with pytest.raises(BleakError, match="Not connected"):
            await client.start_notify("2a6e", lambda c, d: None)
        return client, lost

    client, lost = asyncio.run(main())
    assert lost is client
    assert not peripheral.is_connected


def test_notify_on_an_undeclared_characteristic_names_it(sim_radio: SimulatedRadio) -> None:
    peripheral = sim_radio.add_peripheral(door())
    with pytest.raises(BleError, match=r"'2a37'.*00002a19"):
        peripheral.notify("2a37", b"\x00")


def test_powered_off_adapter_refuses_to_scan(sim_radio: SimulatedRadio) -> None:
    sim_radio.powered = False

    async def main() -> None:
        with pytest.raises(BleakBluetoothNotAvailableError):
            await BleakScanner(lambda d, a: None, backend=SimulatedScanner).start()

    asyncio.run(main())


def test_world_passed_explicitly_wins_over_the_current_one(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    other = SimulatedRadio()
    other.add_peripheral(SimulatedPeripheral(SCALE, advert_interval_s=0.01))
    heard: Adverts = []

    async def main() -> None:
        scanner = BleakScanner(
            lambda d, a: heard.append((d, a)), backend=SimulatedScanner, world=other
        )
        async with scanner:
            await wait_until(lambda: len(heard) >= 1, what="advert from the other world")

    asyncio.run(main())
    assert heard[0][0].address == SCALE


def test_bad_peripheral_options_are_named() -> None:
    with pytest.raises(BleError, match="manufacturer id 70000"):
        SimulatedPeripheral(DOOR, manufacturer_data={70000: b""})
    with pytest.raises(BleError, match="advert_interval_s"):
        SimulatedPeripheral(DOOR, advert_interval_s=0)
    world = SimulatedRadio()
    world.add_peripheral(SimulatedPeripheral(DOOR))
    with pytest.raises(BleError, match="already exists"):
        world.add_peripheral(SimulatedPeripheral(DOOR.lower()))


def test_world_driven_from_another_thread_delivers_on_the_clients_loop(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    peripheral = sim_radio.add_peripheral(door())
    delivered_on: list[int] = []
    dropped_on: list[int] = []

    def from_thread(action: Callable[[], object]) -> None:
        worker = threading.Thread(target=action)
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive()

    async def main() -> int:
        client = BleakClient(
            DOOR, lambda c: dropped_on.append(threading.get_ident()), backend=SimulatedClient
        )
        await client.connect()
        await client.start_notify("2a6e", lambda c, d: delivered_on.append(threading.get_ident()))
        from_thread(lambda: peripheral.notify("2a6e", b"\x01"))
        await wait_until(lambda: len(delivered_on) == 1, what="notification")
        from_thread(peripheral.disconnect)
        await wait_until(lambda: len(dropped_on) == 1, what="disconnect callback")
        assert not client.is_connected
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert delivered_on == dropped_on == [loop_thread]
