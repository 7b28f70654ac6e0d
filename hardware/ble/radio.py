"""The local Bluetooth radio: bleak's scanner and client with the backend chosen once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import structlog
from bleak import BleakClient, BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementDataCallback

from hardware.errors import BleError

if TYPE_CHECKING:
    from hardware.sim.radio import SimulatedRadio

log = structlog.get_logger(__name__)

#: Backends :meth:`Radio.open` accepts (``ble.backend`` in the node config).
BACKENDS = ("bleak", "simulated")

ScanningMode = Literal["active", "passive"]


def manufacturer_pattern(manufacturer_id: int) -> OrPattern:
    """The BlueZ or-pattern matching adverts whose manufacturer data has this company id.

    Manufacturer-specific data (AD type 0xFF) starts with the company id, little-endian
    (Bluetooth Core Specification Supplement, part A, 1.4).
    """
    if not isinstance(manufacturer_id, int) or not 0 <= manufacturer_id <= 0xFFFF:
        raise BleError(f"manufacturer id must be an integer in 0..0xFFFF, got {manufacturer_id!r}")
    return OrPattern(
        0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, manufacturer_id.to_bytes(2, "little")
    )


@dataclass(frozen=True)
class Radio:
    """The local Bluetooth radio: makes ``bleak.BleakScanner`` and ``bleak.BleakClient`` objects.

    ``backend`` is "bleak" (BlueZ on a Pi, through bleak's platform default) or "simulated" (a
    :class:`~hardware.sim.SimulatedRadio`: ``world``, else the current world at the time each
    scanner or client is made). Callers get bleak's own classes either way.

    Example::

        radio = Radio.open("simulated", world=world)
        scanner = radio.scanner(on_advert, manufacturer_id=0xFFFF)
        async with scanner:
            await stop.wait()
        async with radio.client("C0:FF:EE:00:00:01") as client:
            battery = await client.read_gatt_char("2a19")
    """

    backend: str = "bleak"
    adapter: str = "hci0"
    world: SimulatedRadio | None = None

    @classmethod
    def open(
        cls,
        backend: str = "bleak",
        adapter: str = "hci0",
        *,
        world: SimulatedRadio | None = None,
    ) -> Radio:
        """The radio on ``adapter`` through ``backend`` ("bleak" or "simulated")."""
        if backend not in BACKENDS:
            raise BleError(
                f"unknown BLE backend {backend!r}; expected one of {', '.join(BACKENDS)}"
            )
        if not isinstance(adapter, str) or not adapter:
            raise BleError(f"BLE adapter must be a name such as 'hci0', got {adapter!r}")
        if world is not None and backend != "simulated":
            raise BleError("a simulated world only goes with backend='simulated'")
        log.debug("radio_opened", backend=backend, adapter=adapter)
        return cls(backend=backend, adapter=adapter, world=world)

    def scanner(
        self,
        detection_callback: AdvertisementDataCallback,
        *,
        scanning_mode: ScanningMode = "passive",
        service_uuids: list[str] | None = None,
        manufacturer_id: int | None = None,
    ) -> BleakScanner:
        """A bleak scanner (not started) calling ``detection_callback`` for each advert.

        Passive scanning on BlueZ needs an advertisement monitor pattern: it is built from
        ``manufacturer_id``; without one the scan falls back to active, with a log line.
        """
        bluez: BlueZScannerArgs = {"adapter": self.adapter}
        mode = scanning_mode
        if mode == "passive":
            if manufacturer_id is not None:
                bluez["or_patterns"] = [manufacturer_pattern(manufacturer_id)]
            else:
                log.info(
                    "passive_scan_unavailable",
                    adapter=self.adapter,
                    reason="no manufacturer id to match",
                    using="active",
                )
                mode = "active"
        return BleakScanner(
            detection_callback, service_uuids, mode, bluez=bluez, **self._backend_args("scanner")
        )

    def client(
        self,
        address_or_device: str | BLEDevice,
        *,
        disconnected_callback: Callable[[BleakClient], None] | None = None,
        timeout: float = 10,
    ) -> BleakClient:
        """A bleak client (not connected) for one peripheral."""
        return BleakClient(
            address_or_device,
            disconnected_callback,
            timeout=timeout,
            bluez={"adapter": self.adapter},
            **self._backend_args("client"),
        )

    def _backend_args(self, kind: Literal["scanner", "client"]) -> dict[str, Any]:
        if self.backend == "bleak":
            return {}
        from hardware.sim.client import SimulatedClient
        from hardware.sim.radio import current_world
        from hardware.sim.scanner import SimulatedScanner

        world = self.world if self.world is not None else current_world()
        backend = SimulatedScanner if kind == "scanner" else SimulatedClient
        return {"backend": backend, "world": world}
