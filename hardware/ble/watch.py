"""Passive advert watching that keeps the scan alive across adapter errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from hardware.ble._backoff import check_backoff, retry_until_stopped, wait_for_any
from hardware.ble.radio import Radio, manufacturer_pattern
from hardware.errors import BleError

log = structlog.get_logger(__name__)

AdvertHandler = Callable[[BLEDevice, AdvertisementData], None]


async def watch_advertisements(
    radio: Radio,
    on_advert: AdvertHandler,
    stop: asyncio.Event,
    *,
    manufacturer_id: int | None = None,
    backoff_min: float = 1.0,
    backoff_max: float = 60.0,
    silence_restart_s: float | None = None,
) -> None:
    """Scan passively until ``stop`` is set, calling ``on_advert`` for each matching advert.

    With ``manufacturer_id``, only adverts carrying manufacturer data of that company reach
    ``on_advert`` (the adapter filters too, where it can); without one, BlueZ has no pattern
    to scan passively with and the scan is active. A scanner that fails to start is
    retried with exponential backoff; an exception from ``on_advert`` is logged, not raised.

    A scan can also die quietly (bluetoothd restarted, adapter reset): with
    ``silence_restart_s``, a scan that hears nothing for that long is stopped and started
    again. Choose it well above the devices' advert interval.
    """
    check_backoff(backoff_min, backoff_max)
    if silence_restart_s is not None and not silence_restart_s > 0:
        raise BleError(f"silence_restart_s must be positive, got {silence_restart_s!r}")
    heard = asyncio.Event()
    if manufacturer_id is not None:
        manufacturer_pattern(manufacturer_id)  # a bad id is an error now, not on every retry

    def on_detection(device: BLEDevice, advertisement: AdvertisementData) -> None:
        heard.set()
        if manufacturer_id is not None and manufacturer_id not in advertisement.manufacturer_data:
            return
        try:
            on_advert(device, advertisement)
        except Exception:
            log.exception("advert_handler_failed", address=device.address)

    async def start_scanner() -> BleakScanner:
        scanner = radio.scanner(on_detection, manufacturer_id=manufacturer_id)
        await scanner.start()
        return scanner

    def on_failure(error: BaseException, attempt: int, delay: float) -> None:
        log.warning(
            "scan_start_failed",
            adapter=radio.adapter,
            attempt=attempt,
            retry_in_s=round(delay, 3),
            error=repr(error),
        )

    while not stop.is_set():
        scanner = await retry_until_stopped(
            start_scanner,
            stop,
            backoff_min=backoff_min,
            backoff_max=backoff_max,
            on_failure=on_failure,
        )
        if scanner is None:
            return
        log.info("scan_started", adapter=radio.adapter, manufacturer_id=manufacturer_id)
        try:
            await _until_stopped_or_silent(stop, heard, silence_restart_s)
        finally:
            try:
                await scanner.stop()
            except Exception as exc:
                log.warning("scan_stop_failed", adapter=radio.adapter, error=repr(exc))
            log.info("scan_stopped", adapter=radio.adapter)
        if not stop.is_set():
            log.warning("scan_silent", adapter=radio.adapter, silent_for_s=silence_restart_s)


async def _until_stopped_or_silent(
    stop: asyncio.Event, heard: asyncio.Event, silence_s: float | None
) -> None:
    if silence_s is None:
        await stop.wait()
        return
    while not stop.is_set():
        heard.clear()
        await wait_for_any(stop, heard, within=silence_s)
        if not heard.is_set():
            return
