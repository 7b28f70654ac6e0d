"""bleak scanner backend that hears the peripherals of a :class:`SimulatedRadio`."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from typing import Any, Literal

import structlog
from bleak.args.bluez import BlueZScannerArgs, OrPatternLike
from bleak.args.corebluetooth import CBScannerArgs
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason, BleakError

from hardware.sim.radio import SimulatedPeripheral, SimulatedRadio, current_world

log = structlog.get_logger(__name__)

_UUID16 = re.compile(r"^0000([0-9a-f]{4})-0000-1000-8000-00805f9b34fb$")


def _uuid_le_bytes(uuid: str) -> tuple[bool, bytes]:
    """(is 16-bit, little-endian bytes) of a normalised UUID, as it goes over the air."""
    short = _UUID16.match(uuid)
    if short:
        return True, int(short.group(1), 16).to_bytes(2, "little")
    return False, bytes.fromhex(uuid.replace("-", ""))[::-1]


def ad_structures(peripheral: SimulatedPeripheral) -> list[tuple[int, bytes]]:
    """The advertising data structures (AD type, data) a peripheral's advert carries.

    Laid out as in the Bluetooth Core Supplement, part A: manufacturer data starts with the
    company id in little-endian order, service data with the service UUID.
    """
    out: list[tuple[int, bytes]] = []
    if peripheral.name:
        out.append((AdvertisementDataType.COMPLETE_LOCAL_NAME, peripheral.name.encode()))
    shorts = [raw for short, raw in map(_uuid_le_bytes, peripheral.service_uuids) if short]
    longs = [raw for short, raw in map(_uuid_le_bytes, peripheral.service_uuids) if not short]
    if shorts:
        out.append((AdvertisementDataType.COMPLETE_LIST_SERVICE_UUID16, b"".join(shorts)))
    if longs:
        out.append((AdvertisementDataType.COMPLETE_LIST_SERVICE_UUID128, b"".join(longs)))
    for uuid, data in peripheral.service_data.items():
        short, raw = _uuid_le_bytes(uuid)
        kind = (
            AdvertisementDataType.SERVICE_DATA_UUID16
            if short
            else AdvertisementDataType.SERVICE_DATA_UUID128
        )
        out.append((kind, raw + data))
    for company, data in peripheral.manufacturer_data.items():
        out.append(
            (AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, company.to_bytes(2, "little") + data)
        )
    return out


def matches_or_patterns(peripheral: SimulatedPeripheral, patterns: Sequence[OrPatternLike]) -> bool:
    """Whether any BlueZ advertisement-monitor or-pattern matches the peripheral's advert."""
    structures = ad_structures(peripheral)
    for start, ad_type, content in patterns:
        for kind, data in structures:
            if kind == ad_type and data[start : start + len(content)] == bytes(content):
                return True
    return False


class SimulatedScanner(BaseBleakScanner):
    """bleak scanner backend hearing a simulated world; use it through ``bleak.BleakScanner``.

    Takes the same arguments as bleak's BlueZ backend, and like it refuses passive scanning
    without ``bluez={"or_patterns": ...}`` and delivers only adverts matching those patterns.
    ``world=`` picks the world; else the current one.

    Example::

        scanner = bleak.BleakScanner(
            on_advert, scanning_mode="passive",
            bluez={"or_patterns": [(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA,
                                    b"\\xff\\xff")]},
            backend=SimulatedScanner, world=world,
        )
        async with scanner:
            await stop.wait()
    """

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        bluez: BlueZScannerArgs | None = None,
        cb: CBScannerArgs | None = None,
        world: SimulatedRadio | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        bluez = bluez or {}
        self.scanning_mode = scanning_mode
        self.adapter = bluez.get("adapter")
        self._or_patterns: list[OrPatternLike] = list(bluez.get("or_patterns") or [])
        if scanning_mode == "passive" and not self._or_patterns:
            raise BleakError("passive scanning mode requires bluez or_patterns")
        self.world = world if world is not None else current_world()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._due_now: set[str] = set()
        self._adapter_lost = False

    @property
    def is_scanning(self) -> bool:
        """Whether the scan is running."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self.is_scanning:
            raise BleakError("scanner is already scanning")
        if not self.world.powered:
            raise BleakBluetoothNotAvailableError(
                "simulated Bluetooth adapter is powered off",
                BleakBluetoothNotAvailableReason.POWERED_OFF,
            )
        self.seen_devices = {}
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._due_now = set()
        self._adapter_lost = False
        self.world._attach_scanner(self)
        self._task = self._loop.create_task(self._advertise(), name="simulated-scanner")
        log.debug("sim_scan_started", mode=self.scanning_mode, adapter=self.adapter)

    async def stop(self) -> None:
        self.world._detach_scanner(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.debug("sim_scan_stopped", mode=self.scanning_mode, adapter=self.adapter)

    def _lose_adapter(self) -> None:
        """Called by the world, from any thread: the adapter went off under this scan."""
        self._adapter_lost = True
        self._poke(None)

    def _poke(self, address: str | None) -> None:
        """Called by the world, from any thread: wake the scan loop."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return

        def on_loop() -> None:
            if address is not None:
                self._due_now.add(address)
            wake.set()

        with contextlib.suppress(RuntimeError):  # the loop closed between check and call
            loop.call_soon_threadsafe(on_loop)

    async def _advertise(self) -> None:
        assert self._loop is not None
        assert self._wake is not None
        loop, wake = self._loop, self._wake
        next_due: dict[str, float] = {}
        while True:
            if self._adapter_lost:
                # As on BlueZ, a scan does not survive its adapter going away: it stays
                # "started" but hears nothing until it is stopped and started again.
                log.warning("sim_scan_lost_adapter", adapter=self.adapter)
                return
            now = loop.time()
            reachable = list(self.world._reachable_peripherals())
            due_now, self._due_now = self._due_now, set()
            for peripheral in reachable:
                due = next_due.get(peripheral.address)
                if due is None or due <= now or peripheral.address in due_now:
                    self._hear(peripheral)
                    interval = peripheral.advert_interval_s / self.world.speed
                    next_due[peripheral.address] = now + interval
            alive = {p.address for p in reachable}
            next_due = {a: t for a, t in next_due.items() if a in alive}
            timeout = max(0.0, min(next_due.values()) - loop.time()) if next_due else None
            wake.clear()
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that lands as the
            # wake event is set (the scanner being stopped as a peripheral leaves), and this
            # loop, which only ends by cancellation, would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await wake.wait()

    def _hear(self, peripheral: SimulatedPeripheral) -> None:
        passive = self._or_patterns and self.scanning_mode == "passive"
        if passive and not matches_or_patterns(peripheral, self._or_patterns):
            return
        if not self.is_allowed_uuid(peripheral.service_uuids):
            return
        # Built the way bleak's BlueZ backend builds it from a D-Bus Device1 property set.
        advertisement = AdvertisementData(
            local_name=peripheral.name,
            manufacturer_data=dict(peripheral.manufacturer_data),
            service_data=dict(peripheral.service_data),
            service_uuids=list(peripheral.service_uuids),
            tx_power=peripheral.tx_power,
            rssi=peripheral.rssi,
            platform_data=(peripheral.address, peripheral),
        )
        device = self.create_or_update_device(
            peripheral.address, peripheral.address, peripheral.name, peripheral, advertisement
        )
        try:
            self.call_detection_callbacks(device, advertisement)
        except Exception:
            # A real stack logs and carries on scanning when a callback raises; so do we.
            log.exception("detection_callback_failed", address=peripheral.address)
