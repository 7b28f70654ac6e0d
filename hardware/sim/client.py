"""bleak client backend that holds GATT connections to peripherals of a :class:`SimulatedRadio`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
from bleak.args import SizedBuffer
from bleak.args.bluez import BlueZClientArgs
from bleak.args.winrt import WinRTClientArgs
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakCharacteristicNotFoundError, BleakDeviceNotFoundError, BleakError
from bleak.uuids import normalize_uuid_16

from hardware.sim.radio import SimulatedPeripheral, SimulatedRadio, current_world

log = structlog.get_logger(__name__)

#: The ATT MTU every simulated link negotiates (the BLE minimum, as bleak reports on BlueZ).
MTU = 23

_CCCD_UUID = normalize_uuid_16(0x2902)


def build_services(peripheral: SimulatedPeripheral) -> BleakGATTServiceCollection:
    """The GATT table of a peripheral as bleak's own service, characteristic and CCCD objects.

    One service; per characteristic a declaration handle, a value handle (the one bleak
    reports) and a Client Characteristic Configuration descriptor.
    """
    collection = BleakGATTServiceCollection()
    service = BleakGATTService(peripheral, 1, peripheral.service_uuid)
    collection.add_service(service)
    handle = service.handle
    for uuid in peripheral.characteristics:
        handle += 2
        characteristic = BleakGATTCharacteristic(
            uuid,
            handle,
            uuid,
            ["read", "write", "notify"],
            lambda: MTU - 3,
            service,
        )
        collection.add_characteristic(characteristic)
        handle += 1
        collection.add_descriptor(BleakGATTDescriptor(None, handle, _CCCD_UUID, characteristic))
    return collection


class SimulatedClient(BaseBleakClient):
    """bleak client backend for a simulated peripheral; use it through ``bleak.BleakClient``.

    Connecting fails with bleak's :class:`BleakDeviceNotFoundError` when the peripheral is
    absent or out of range (at once, where a real stack would first scan for ``timeout``
    seconds). As on BlueZ, the disconnected callback fires on every disconnect.
    ``world=`` picks the world; else the current one.

    Example::

        async with bleak.BleakClient(
            "C0:FF:EE:00:00:01", backend=SimulatedClient, world=world
        ) as client:
            level = await client.read_gatt_char("2a19")
    """

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        services: set[str] | None = None,
        bluez: BlueZClientArgs | None = None,
        winrt: WinRTClientArgs | None = None,
        world: SimulatedRadio | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self.adapter = (bluez or {}).get("adapter")
        self.world = world if world is not None else current_world()
        self._peripheral: SimulatedPeripheral | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._notify: dict[str, NotifyCallback] = {}

    @property
    def name(self) -> str:
        found = self.world.get(self.address)
        if found is not None and found.name:
            return found.name
        return self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return MTU

    @property
    def is_connected(self) -> bool:
        return self._peripheral is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._peripheral is not None:
            return
        peripheral = self.world.get(self.address)
        await asyncio.sleep(0)  # a connection is never instantaneous; let others run
        if peripheral is None or not peripheral._reachable():
            raise BleakDeviceNotFoundError(
                self.address, f"Device with address {self.address} was not found."
            )
        self._loop = asyncio.get_running_loop()
        self._notify = {}
        self.services = build_services(peripheral)
        self._peripheral = peripheral
        peripheral._attach(self)
        log.debug("sim_connected", address=self.address)

    async def disconnect(self) -> None:
        peripheral = self._peripheral
        if peripheral is None:
            return
        peripheral._detach(self)
        self._on_lost()
        await asyncio.sleep(0)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        self._require_connection()

    async def unpair(self) -> None:
        await self.disconnect()

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        peripheral = self._require_connection()
        try:
            return bytearray(peripheral.value(characteristic.uuid))
        except Exception as exc:
            raise BleakCharacteristicNotFoundError(characteristic.uuid) from exc

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        self._require_connection()
        subscribed = descriptor.characteristic_uuid in self._notify
        return bytearray(b"\x01\x00" if subscribed else b"\x00\x00")

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        peripheral = self._require_connection()
        peripheral._record_write(characteristic.uuid, bytes(data))

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        raise BleakError(f"{self.address}: simulated descriptors are read-only")

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        self._require_connection()
        self._notify[characteristic.uuid] = callback

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._require_connection()
        self._notify.pop(characteristic.uuid, None)

    def _require_connection(self) -> SimulatedPeripheral:
        if self._peripheral is None:
            raise BleakError("Not connected")
        return self._peripheral

    def _in_own_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _run_on_loop(self, action: Callable[[], None]) -> bool:
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        if self._in_own_loop():
            action()
            return True
        try:
            loop.call_soon_threadsafe(action)
        except RuntimeError:  # the loop closed between check and call
            return False
        return True

    def _deliver(self, char_uuid: str, data: bytes) -> bool:
        """Called by the peripheral: hand a notification to the subscriber, on its loop."""
        callback = self._notify.get(char_uuid)
        loop = self._loop
        if callback is None or loop is None or loop.is_closed():
            return False

        def deliver() -> None:
            # bleak calls notification callbacks on the event loop with a fresh bytearray.
            if self._notify.get(char_uuid) is callback:
                callback(bytearray(data))

        try:
            loop.call_soon_threadsafe(deliver)
        except RuntimeError:
            return False
        return True

    def _lost(self) -> None:
        """Called by the peripheral or the world: the link went down."""
        if not self._run_on_loop(self._on_lost):
            self._on_lost()  # no loop to tell any more; just forget the link

    def _on_lost(self) -> None:
        if self._peripheral is None:
            return
        self._peripheral = None
        self._notify = {}
        self.services = None
        log.debug("sim_disconnected", address=self.address)
        callback, loop = self._disconnected_callback, self._loop
        if callback is not None and loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon(callback)
