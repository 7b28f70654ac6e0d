"""The radio hands out bleak's own scanner and client, wired to the chosen backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends import BleakBackend
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from structlog.testing import capture_logs

from hardware.ble import Radio, manufacturer_pattern
from hardware.errors import BleError
from hardware.sim import SimulatedPeripheral, SimulatedRadio

Waiter = Callable[..., Any]


def test_manufacturer_pattern_matches_the_little_endian_company_id() -> None:
    start, ad_type, content = manufacturer_pattern(0x0D4A)
    assert (start, ad_type, content) == (0, 0xFF, b"\x4a\x0d")


def test_open_refuses_an_unknown_backend() -> None:
    with pytest.raises(BleError, match=r"'bluez'.*bleak, simulated"):
        Radio.open("bluez")


def test_open_refuses_a_world_for_the_real_backend() -> None:
    with pytest.raises(BleError, match="simulated"):
        Radio.open("bleak", world=SimulatedRadio())


def test_real_backend_scanner_is_bleaks_bluez_scanner_even_without_a_pattern() -> None:
    # Passive scanning on BlueZ needs or_patterns; without a manufacturer id the radio scans
    # actively instead of raising. Nothing touches D-Bus until start().
    radio = Radio.open("bleak", "hci1")
    with capture_logs() as logs:
        scanner = radio.scanner(lambda d, a: None)
    assert isinstance(scanner, BleakScanner)
    assert scanner.backend_id == BleakBackend.BLUEZ_DBUS
    assert [e["event"] for e in logs] == ["passive_scan_unavailable"]
    assert isinstance(radio.scanner(lambda d, a: None, manufacturer_id=0x0D4A), BleakScanner)


def test_real_backend_client_is_bleaks_bluez_client() -> None:
    client = Radio.open("bleak").client("C0:FF:EE:00:00:01")
    assert isinstance(client, BleakClient)
    assert client.backend_id == BleakBackend.BLUEZ_DBUS
    assert client.address == "C0:FF:EE:00:00:01"


def test_simulated_radio_uses_the_current_world_when_none_is_given(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    sim_radio.add_peripheral(
        SimulatedPeripheral(
            "C0:FF:EE:00:00:01",
            "door-1",
            manufacturer_data={0x0D4A: b"\x01"},
            advert_interval_s=0.02,
            characteristics={"2a19": b"\x64"},
        )
    )
    radio = Radio.open("simulated")
    heard: list[tuple[BLEDevice, AdvertisementData]] = []

    async def main() -> bytearray:
        scanner = radio.scanner(lambda d, a: heard.append((d, a)), manufacturer_id=0x0D4A)
        assert scanner.backend_id == "SimulatedScanner"
        async with scanner:
            await wait_until(lambda: len(heard) >= 1, what="advert")
        async with radio.client(heard[0][0]) as client:
            return await client.read_gatt_char("2a19")

    assert asyncio.run(main()) == b"\x64"
