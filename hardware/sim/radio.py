"""The simulated radio: a world of BLE peripherals that bleak's simulated backends talk to.

One :class:`SimulatedRadio` per test or per simulated node process. Code under test never sees
it: it uses ``bleak.BleakScanner`` / ``bleak.BleakClient`` with the backends from
:mod:`hardware.sim.scanner` and :mod:`hardware.sim.client`, which find the world passed as
``world=`` or else the current one (:func:`current_world`).

The world may be driven from any thread; everything it delivers (adverts, notifications,
disconnects) reaches scanners and clients on their own event loop, as a real stack does.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import structlog
from bleak.uuids import normalize_uuid_str

from hardware.errors import BleError

if TYPE_CHECKING:
    from hardware.sim.client import SimulatedClient
    from hardware.sim.scanner import SimulatedScanner

log = structlog.get_logger(__name__)

#: Service that holds a peripheral's characteristics when it advertises no service UUID.
DEFAULT_SERVICE_UUID = "4d616368-696b-6164-6f00-000000000001"


def _normalize_address(address: str) -> str:
    if not isinstance(address, str) or not address.strip():
        raise BleError(f"peripheral address must be a non-empty string, got {address!r}")
    return address.strip().upper()


def _normalize_char(uuid: str) -> str:
    try:
        return normalize_uuid_str(uuid)
    except (ValueError, TypeError, AttributeError) as exc:
        raise BleError(f"{uuid!r} is not a characteristic UUID: {exc}") from exc


def _manufacturer_data(data: Mapping[int, bytes], *, address: str) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for company, payload in data.items():
        if not isinstance(company, int) or not 0 <= company <= 0xFFFF:
            raise BleError(f"{address}: manufacturer id {company!r} is not in 0..0xFFFF")
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise BleError(f"{address}: manufacturer data for {company:#06x} is not bytes")
        out[company] = bytes(payload)
    return out


class SimulatedPeripheral:
    """A simulated BLE peripheral: what it advertises and the GATT characteristics it serves.

    Every characteristic is readable and notifiable; all sit in one service (the first advertised
    service UUID, else :data:`DEFAULT_SERVICE_UUID`).

    Example::

        world = SimulatedRadio()
        scale = world.add_peripheral(
            SimulatedPeripheral(
                "C0:FF:EE:00:00:01", "scale-1",
                manufacturer_data={0xFFFF: b"\\x01\\x02"},
                characteristics={"2a19": b"\\x64"},
            )
        )
        scale.set_advert(manufacturer_data={0xFFFF: b"\\x01\\x03"})
        scale.notify("2a19", b"\\x63")  # to every client subscribed to the battery level
    """

    def __init__(
        self,
        address: str,
        name: str | None = None,
        *,
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_uuids: Sequence[str] = (),
        service_data: Mapping[str, bytes] | None = None,
        advert_interval_s: float = 1.0,
        rssi: int = -60,
        tx_power: int | None = None,
        characteristics: Mapping[str, bytes] | None = None,
    ) -> None:
        self.address = _normalize_address(address)
        if not (isinstance(advert_interval_s, int | float) and advert_interval_s > 0):
            raise BleError(
                f"{self.address}: advert_interval_s must be a positive number, "
                f"got {advert_interval_s!r}"
            )
        if not math.isfinite(advert_interval_s):
            raise BleError(f"{self.address}: advert_interval_s must be finite")
        self.name = name
        self.manufacturer_data = _manufacturer_data(manufacturer_data or {}, address=self.address)
        self.service_uuids = [normalize_uuid_str(u) for u in service_uuids]
        self.service_data = {
            normalize_uuid_str(k): bytes(v) for k, v in (service_data or {}).items()
        }
        self.advert_interval_s = float(advert_interval_s)
        self.rssi = rssi
        self.tx_power = tx_power
        self._values: dict[str, bytes] = {
            _normalize_char(uuid): bytes(value) for uuid, value in (characteristics or {}).items()
        }
        #: Writes clients made, oldest first: (characteristic UUID, payload).
        self.writes: list[tuple[str, bytes]] = []
        self._in_range = True
        self._world: SimulatedRadio | None = None
        self._links: set[SimulatedClient] = set()
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"SimulatedPeripheral({self.address!r}, {self.name!r})"

    # What it broadcasts

    def set_advert(
        self,
        *,
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_uuids: Sequence[str] | None = None,
        service_data: Mapping[str, bytes] | None = None,
        name: str | None = None,
        rssi: int | None = None,
    ) -> None:
        """Change what the peripheral broadcasts (arguments left out stay as they are).

        Running scanners hear the new advert at once, then every ``advert_interval_s``.
        """
        if manufacturer_data is not None:
            self.manufacturer_data = _manufacturer_data(manufacturer_data, address=self.address)
        if service_uuids is not None:
            self.service_uuids = [normalize_uuid_str(u) for u in service_uuids]
        if service_data is not None:
            self.service_data = {normalize_uuid_str(k): bytes(v) for k, v in service_data.items()}
        if name is not None:
            self.name = name
        if rssi is not None:
            self.rssi = rssi
        self._announce()

    @property
    def in_range(self) -> bool:
        """Whether the local adapter can hear it; out of range drops links and stops adverts."""
        return self._in_range

    @in_range.setter
    def in_range(self, value: bool) -> None:
        self._in_range = bool(value)
        if not self._in_range:
            self._drop_links(reason="out_of_range")
        self._announce()

    # What it serves

    @property
    def characteristics(self) -> dict[str, bytes]:
        """Current values by normalised characteristic UUID (a copy)."""
        with self._lock:
            return dict(self._values)

    def value(self, char_uuid: str) -> bytes:
        """The value a read of ``char_uuid`` returns now."""
        key = self._known_char(char_uuid)
        with self._lock:
            return self._values[key]

    def set_value(self, char_uuid: str, payload: bytes) -> None:
        """Set what the next read of ``char_uuid`` returns, without notifying."""
        key = self._known_char(char_uuid)
        with self._lock:
            self._values[key] = bytes(payload)

    def notify(self, char_uuid: str, payload: bytes) -> int:
        """Send a notification to every connected client subscribed to ``char_uuid``.

        Also updates the readable value. Returns how many clients it was sent to.
        """
        key = self._known_char(char_uuid)
        data = bytes(payload)
        with self._lock:
            self._values[key] = data
            links = list(self._links)
        return sum(1 for client in links if client._deliver(key, data))

    @property
    def is_connected(self) -> bool:
        """Whether any client holds a GATT connection to it."""
        with self._lock:
            return bool(self._links)

    def disconnect(self) -> None:
        """Drop every client's link, as when the peripheral resets; their callbacks fire."""
        self._drop_links(reason="peripheral_disconnect")

    # Used by the backends

    def _known_char(self, char_uuid: str) -> str:
        key = _normalize_char(char_uuid)
        if key not in self._values:
            known = ", ".join(sorted(self._values)) or "none"
            raise BleError(
                f"{self.address} has no characteristic {char_uuid!r} (it has: {known}); "
                "declare it in SimulatedPeripheral(characteristics=...)"
            )
        return key

    @property
    def service_uuid(self) -> str:
        return self.service_uuids[0] if self.service_uuids else DEFAULT_SERVICE_UUID

    def _reachable(self) -> bool:
        world = self._world
        return world is not None and world.powered and self._in_range

    def _attach(self, client: SimulatedClient) -> None:
        with self._lock:
            self._links.add(client)

    def _detach(self, client: SimulatedClient) -> None:
        with self._lock:
            self._links.discard(client)

    def _record_write(self, char_uuid: str, payload: bytes) -> None:
        with self._lock:
            self._values[char_uuid] = payload
            self.writes.append((char_uuid, payload))

    def _drop_links(self, *, reason: str) -> None:
        with self._lock:
            links = list(self._links)
            self._links.clear()
        for client in links:
            log.info("sim_link_dropped", address=self.address, reason=reason)
            client._lost()

    def _announce(self) -> None:
        world = self._world
        if world is not None:
            world._announce(self.address)


_current: SimulatedRadio | None = None
_current_lock = threading.Lock()


def current_world() -> SimulatedRadio:
    """The world simulated backends use when none is passed; created empty on first use."""
    global _current
    with _current_lock:
        if _current is None:
            _current = SimulatedRadio()
        return _current


def set_current_world(world: SimulatedRadio | None) -> SimulatedRadio | None:
    """Make ``world`` the current world and return the previous one (to restore it later)."""
    global _current
    with _current_lock:
        previous, _current = _current, world
    return previous


class SimulatedRadio:
    """A world of simulated BLE peripherals, heard by simulated scanners and clients.

    ``speed`` scales advert intervals so that demos run faster than the wall clock; ``powered``
    is the local adapter: turned off, running scans go silent for good (as on BlueZ), new
    scans cannot start, and connections drop and cannot be made.

    Example::

        import bleak
        from hardware.sim import SimulatedPeripheral, SimulatedRadio, SimulatedScanner

        world = SimulatedRadio(speed=10)
        world.add_peripheral(SimulatedPeripheral("C0:FF:EE:00:00:01", "door-1"))
        scanner = bleak.BleakScanner(print, backend=SimulatedScanner, world=world)
    """

    def __init__(self, *, speed: float = 1.0, powered: bool = True) -> None:
        self._peripherals: dict[str, SimulatedPeripheral] = {}
        self._scanners: set[SimulatedScanner] = set()
        self._lock = threading.RLock()
        self._speed = 1.0
        self.speed = speed
        self._powered = powered

    def __repr__(self) -> str:
        return f"SimulatedRadio({len(self._peripherals)} peripherals, speed={self._speed})"

    @property
    def speed(self) -> float:
        """How many times faster than the wall clock peripherals advertise."""
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise BleError(f"simulated radio speed must be a positive number, got {value!r}")
        self._speed = float(value)
        self._announce(None)

    @property
    def powered(self) -> bool:
        """Whether the local Bluetooth adapter is on; off kills running scans and links."""
        return self._powered

    @powered.setter
    def powered(self, value: bool) -> None:
        self._powered = bool(value)
        if not self._powered:
            for peripheral in self.peripherals:
                peripheral._drop_links(reason="adapter_off")
            with self._lock:
                scanners = list(self._scanners)
            for scanner in scanners:
                scanner._lose_adapter()
        self._announce(None)

    @property
    def peripherals(self) -> tuple[SimulatedPeripheral, ...]:
        """Every peripheral in the world, in range or not."""
        with self._lock:
            return tuple(self._peripherals.values())

    def add_peripheral(self, peripheral: SimulatedPeripheral) -> SimulatedPeripheral:
        """Put ``peripheral`` in the world; it starts advertising at once. Returns it."""
        with self._lock:
            if peripheral._world is not None:
                raise BleError(f"{peripheral.address} is already in a simulated radio")
            if peripheral.address in self._peripherals:
                raise BleError(f"a peripheral with address {peripheral.address} already exists")
            self._peripherals[peripheral.address] = peripheral
            peripheral._world = self
        log.debug("sim_peripheral_added", address=peripheral.address, name=peripheral.name)
        self._announce(peripheral.address)
        return peripheral

    def remove_peripheral(self, peripheral: SimulatedPeripheral | str) -> None:
        """Take a peripheral (or its address) out of the world, dropping its links."""
        address = (
            peripheral.address
            if isinstance(peripheral, SimulatedPeripheral)
            else _normalize_address(peripheral)
        )
        with self._lock:
            found = self._peripherals.pop(address, None)
        if found is None:
            raise BleError(f"no simulated peripheral with address {address}")
        found._drop_links(reason="removed")
        found._world = None
        log.debug("sim_peripheral_removed", address=address)
        self._announce(None)

    def get(self, address: str) -> SimulatedPeripheral | None:
        """The peripheral with ``address`` (any letter case), or None."""
        with self._lock:
            return self._peripherals.get(_normalize_address(address))

    def peripheral(self, address: str) -> SimulatedPeripheral:
        """The peripheral with ``address``; :class:`BleError` if there is none."""
        found = self.get(address)
        if found is None:
            raise BleError(f"no simulated peripheral with address {address}")
        return found

    def _attach_scanner(self, scanner: SimulatedScanner) -> None:
        with self._lock:
            self._scanners.add(scanner)

    def _detach_scanner(self, scanner: SimulatedScanner) -> None:
        with self._lock:
            self._scanners.discard(scanner)

    def _announce(self, address: str | None) -> None:
        """Wake running scanners: something changed (``address``'s advert, or the world)."""
        with self._lock:
            scanners = list(self._scanners)
        for scanner in scanners:
            scanner._poke(address)

    def _reachable_peripherals(self) -> Iterable[SimulatedPeripheral]:
        return [p for p in self.peripherals if p._reachable()]
