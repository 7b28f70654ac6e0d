"""A GATT connection to one peripheral, kept alive with reconnects and backoff."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping

import structlog
from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.uuids import normalize_uuid_str

from hardware.ble._backoff import (
    check_backoff,
    retry_until_stopped,
    wait_for_any,
    wait_for_event,
)
from hardware.ble.radio import Radio
from hardware.errors import BleError

log = structlog.get_logger(__name__)

PayloadHandler = Callable[[bytes], None]

#: How many recent backoff delays :attr:`GattLink.recent_delays` keeps.
DELAY_HISTORY = 64


def _normalize(handlers: Mapping[str, PayloadHandler], what: str) -> dict[str, PayloadHandler]:
    out: dict[str, PayloadHandler] = {}
    for uuid, handler in handlers.items():
        try:
            key = normalize_uuid_str(uuid)
        except (ValueError, TypeError, AttributeError) as exc:
            raise BleError(f"{what}: {uuid!r} is not a characteristic UUID") from exc
        if not callable(handler):
            raise BleError(f"{what}: the handler for {uuid!r} is not callable")
        out[key] = handler
    return out


class GattLink:
    """A GATT connection to one peripheral that reconnects, with exponential backoff and jitter.

    On each connection it reads the ``read_on_connect`` characteristics and subscribes to the
    ``notify`` ones, passing payloads on as ``bytes``. Keys are characteristic UUIDs, 16-bit
    ("2a19") or 128-bit. Failed attempts wait ``backoff_min``, about twice that, and so on up to
    ``backoff_max``; after a dropped link it waits ``backoff_min`` before reconnecting.

    Example::

        link = GattLink(radio, "C0:FF:EE:00:00:01", notify={"2a6e": on_temperature},
                        read_on_connect={"2a19": on_battery})
        stop = asyncio.Event()
        task = asyncio.create_task(link.run(stop))
        ...
        stop.set()
        await task
    """

    def __init__(
        self,
        radio: Radio,
        address: str | BLEDevice,
        *,
        notify: Mapping[str, PayloadHandler],
        read_on_connect: Mapping[str, PayloadHandler] | None = None,
        backoff_min: float = 1.0,
        backoff_max: float = 60.0,
        connect_timeout: float = 10.0,
    ) -> None:
        check_backoff(backoff_min, backoff_max)
        self.radio = radio
        self._target = address
        self.address = address.address if isinstance(address, BLEDevice) else address
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        self._notify = _normalize(notify, "notify")
        self._read = _normalize(read_on_connect or {}, "read_on_connect")
        self._client: BleakClient | None = None
        self._running = False
        self._delays: deque[float] = deque(maxlen=DELAY_HISTORY)
        #: Successful connections so far.
        self.connects = 0
        #: Failed connection attempts so far (connect, read or subscribe failed).
        self.failures = 0
        #: The error of the last failed attempt, or None.
        self.last_error: BaseException | None = None

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "not connected"
        return f"<GattLink {self.address} {state}, connects={self.connects}>"

    @property
    def is_connected(self) -> bool:
        """Whether the link is up now."""
        return self._client is not None and self._client.is_connected

    @property
    def recent_delays(self) -> tuple[float, ...]:
        """Backoff delays chosen after recent failed attempts, oldest first."""
        return tuple(self._delays)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the link up until ``stop`` is set, then disconnect and return."""
        if self._running:
            raise BleError(f"GattLink for {self.address} is already running")
        self._running = True
        try:
            while not stop.is_set():
                lost = asyncio.Event()

                async def attempt(lost: asyncio.Event = lost) -> BleakClient:
                    return await self._connect(lost)

                client = await retry_until_stopped(
                    attempt,
                    stop,
                    backoff_min=self.backoff_min,
                    backoff_max=self.backoff_max,
                    on_failure=self._failed,
                )
                if client is None:
                    break
                self._client = client
                try:
                    await wait_for_any(stop, lost)
                finally:
                    self._client = None
                    if client.is_connected:
                        await self._close(client)
                if stop.is_set():
                    break
                log.warning("gatt_disconnected", address=self.address, connects=self.connects)
                await wait_for_event(stop, self.backoff_min)
        finally:
            self._running = False

    async def _connect(self, lost: asyncio.Event) -> BleakClient:
        client = self.radio.client(
            self._target,
            disconnected_callback=lambda _client: lost.set(),
            timeout=self.connect_timeout,
        )
        await client.connect()
        try:
            for uuid, handler in self._read.items():
                data = await client.read_gatt_char(uuid)
                self._hand_over(handler, uuid, bytes(data))
            for uuid, handler in self._notify.items():
                await client.start_notify(uuid, self._notification_handler(uuid, handler))
        except BaseException:
            await self._close(client)
            raise
        self.connects += 1
        log.info("gatt_connected", address=self.address, connects=self.connects)
        return client

    def _notification_handler(
        self, uuid: str, handler: PayloadHandler
    ) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
        def on_notification(_characteristic: BleakGATTCharacteristic, data: bytearray) -> None:
            self._hand_over(handler, uuid, bytes(data))

        return on_notification

    def _hand_over(self, handler: PayloadHandler, uuid: str, data: bytes) -> None:
        try:
            handler(data)
        except Exception:
            # A payload the handler chokes on is the handler's problem, not the link's.
            log.exception("gatt_handler_failed", address=self.address, char=uuid)

    def _failed(self, error: BaseException, attempt: int, delay: float) -> None:
        self.failures += 1
        self.last_error = error
        self._delays.append(delay)
        log.warning(
            "gatt_connect_failed",
            address=self.address,
            attempt=attempt,
            retry_in_s=round(delay, 3),
            error=repr(error),
        )

    async def _close(self, client: BleakClient) -> None:
        try:
            await client.disconnect()
        except Exception as exc:
            log.warning("gatt_disconnect_failed", address=self.address, error=repr(exc))
