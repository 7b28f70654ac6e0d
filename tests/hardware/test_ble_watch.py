"""watch_advertisements: passive scanning, filtered by manufacturer, kept alive."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from structlog.testing import capture_logs

from hardware.ble import Radio, watch_advertisements
from hardware.sim import SimulatedPeripheral, SimulatedRadio

Waiter = Callable[..., Any]
Adverts = list[tuple[BLEDevice, AdvertisementData]]

OURS = 0x0D4A
THEIRS = 0x004C


def populate(world: SimulatedRadio) -> None:
    world.add_peripheral(
        SimulatedPeripheral(
            "C0:FF:EE:00:00:01", manufacturer_data={OURS: b"\x01"}, advert_interval_s=0.01
        )
    )
    world.add_peripheral(
        SimulatedPeripheral(
            "C0:FF:EE:00:00:02", manufacturer_data={THEIRS: b"\x02"}, advert_interval_s=0.01
        )
    )
    world.add_peripheral(
        SimulatedPeripheral(
            "C0:FF:EE:00:00:03",
            manufacturer_data={THEIRS: b"\x03", OURS: b"\x04"},
            advert_interval_s=0.01,
        )
    )


def watch_until(
    radio: Radio,
    enough: Callable[[Adverts], bool],
    wait_until: Waiter,
    **options: Any,
) -> Adverts:
    heard: Adverts = []

    async def main() -> None:
        stop = asyncio.Event()
        watching = asyncio.create_task(
            watch_advertisements(radio, lambda d, a: heard.append((d, a)), stop, **options)
        )
        await wait_until(lambda: enough(heard), what="enough adverts")
        stop.set()
        await asyncio.wait_for(watching, 10)

    asyncio.run(main())
    return heard


def test_watch_passes_on_only_adverts_of_the_manufacturer(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    populate(sim_radio)
    heard = watch_until(
        Radio.open("simulated"),
        lambda h: sum(d.address.endswith("01") for d, _ in h) >= 5,
        wait_until,
        manufacturer_id=OURS,
    )
    assert {d.address for d, _ in heard} == {"C0:FF:EE:00:00:01", "C0:FF:EE:00:00:03"}
    assert all(a.manufacturer_data[OURS] in (b"\x01", b"\x04") for _, a in heard)


def test_watch_without_manufacturer_passes_on_every_advert(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    populate(sim_radio)
    heard = watch_until(
        Radio.open("simulated"), lambda h: len({d.address for d, _ in h}) == 3, wait_until
    )
    assert len({d.address for d, _ in heard}) == 3


def test_watch_retries_a_failing_adapter_until_it_comes_back(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    populate(sim_radio)
    sim_radio.powered = False
    heard: Adverts = []

    async def main() -> list[MutableMapping[str, Any]]:
        stop = asyncio.Event()
        with capture_logs() as logs:
            watching = asyncio.create_task(
                watch_advertisements(
                    Radio.open("simulated"),
                    lambda d, a: heard.append((d, a)),
                    stop,
                    manufacturer_id=OURS,
                    backoff_min=0.01,
                    backoff_max=0.02,
                )
            )
            await wait_until(
                lambda: sum(e["event"] == "scan_start_failed" for e in logs) >= 3,
                what="three failed starts",
            )
            assert heard == []
            sim_radio.powered = True
            await wait_until(lambda: len(heard) >= 1, what="advert after power returns")
            stop.set()
            await asyncio.wait_for(watching, 10)
        return logs

    logs = asyncio.run(main())
    failures = [e for e in logs if e["event"] == "scan_start_failed"]
    assert all(0.01 <= e["retry_in_s"] <= 0.02 for e in failures)
    assert failures[0]["error"].startswith("BleakBluetoothNotAvailableError")


def test_watch_restarts_a_scan_that_fell_silent(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    populate(sim_radio)
    heard: Adverts = []

    async def main() -> list[MutableMapping[str, Any]]:
        stop = asyncio.Event()
        with capture_logs() as logs:
            watching = asyncio.create_task(
                watch_advertisements(
                    Radio.open("simulated"),
                    lambda d, a: heard.append((d, a)),
                    stop,
                    backoff_min=0.01,
                    backoff_max=0.02,
                    silence_restart_s=0.2,
                )
            )
            await wait_until(lambda: len(heard) >= 1, what="first advert")
            # The adapter resets: the running scan dies quietly, as on BlueZ.
            sim_radio.powered = False
            sim_radio.powered = True
            count = len(heard)
            await wait_until(lambda: len(heard) > count + 3, what="adverts after the restart")
            stop.set()
            await asyncio.wait_for(watching, 10)
        return logs

    events = [e["event"] for e in asyncio.run(main())]
    assert events.count("scan_started") >= 2
    assert "scan_silent" in events


def test_a_failing_handler_does_not_stop_the_watch(
    sim_radio: SimulatedRadio, wait_until: Waiter
) -> None:
    populate(sim_radio)
    calls: list[str] = []

    def fragile(device: BLEDevice, advert: AdvertisementData) -> None:
        calls.append(device.address)
        raise ValueError("bad payload")

    async def main() -> None:
        stop = asyncio.Event()
        with capture_logs():
            watching = asyncio.create_task(
                watch_advertisements(Radio.open("simulated"), fragile, stop, manufacturer_id=OURS)
            )
            await wait_until(lambda: len(calls) >= 3, what="three calls")
            stop.set()
            await asyncio.wait_for(watching, 10)

    asyncio.run(main())
