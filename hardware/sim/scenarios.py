"""Simulation scenarios: what residents and vehicles do, played on mock pins and a simulated radio.

Each scenario is a coroutine that runs until ``stop`` is set. It drives gpiozero ``MockFactory``
pins (``factory.pin(n).drive_low()``) and :class:`~hardware.sim.SimulatedPeripheral` objects
(``notify``, ``set_advert``, ``in_range``) with payloads from :mod:`hardware.gatt`'s encoders,
so the agents above read exactly what real hardware would give them. Randomness comes from the
``random.Random`` passed in (seeded: the same seed plays the same day); scenario time runs
``speed`` times faster than the wall clock.

Plain parameters only: this module knows nothing of the node config (``edge`` maps a config to
these calls).

Example::

    factory = MockFactory()
    stop = asyncio.Event()
    await restroom_stall(factory, door_pin=17, pir_pin=27, rng=random.Random(1),
                         speed=60.0, stop=stop)
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from hardware.gatt import (
    MeasurementStatus,
    encode_battery_level,
    encode_blood_pressure_measurement,
    encode_csc_measurement,
    encode_location_and_speed,
    encode_temperature_measurement,
    encode_weight_measurement,
)
from hardware.mobility_adv import MobilityAdvert
from hardware.sim.radio import SimulatedPeripheral, SimulatedRadio

log = structlog.get_logger(__name__)

#: Tsukuba Station, where the simulated vehicles ride around.
TSUKUBA_STATION = (36.0827, 140.1115)
#: Metres per degree of latitude (spherical Earth, mean radius).
_M_PER_DEG = math.pi * 6_371_008.8 / 180.0
#: The shortest real-time step a scenario takes, so a high ``speed`` does not spin the CPU.
MIN_STEP_S = 0.05

HealthKind = Literal["scale", "blood_pressure", "thermometer"]

#: Characteristic each kind of health device notifies on.
HEALTH_UUIDS: dict[str, str] = {
    "scale": "2a9d",
    "blood_pressure": "2a35",
    "thermometer": "2a1c",
}


async def pause(stop: asyncio.Event, scenario_s: float, speed: float) -> bool:
    """Wait ``scenario_s`` of scenario time (wall time / ``speed``); True if stopped first."""
    try:
        await asyncio.wait_for(stop.wait(), max(0.0, scenario_s / speed))
    except TimeoutError:
        return False
    return True


def _check_speed(speed: float) -> None:
    if not speed > 0 or not math.isfinite(speed):
        raise ValueError(f"speed must be a positive number, got {speed!r}")


# --- restroom --------------------------------------------------------------------------------


async def restroom_stall(
    factory: Any,
    *,
    door_pin: int | str,
    pir_pin: int | str | None = None,
    door_closed_when_active: bool = True,
    rng: random.Random,
    speed: float,
    stop: asyncio.Event,
    mean_gap_s: float = 900.0,
    visit_s: tuple[float, float] = (60.0, 600.0),
) -> None:
    """Visits to one stall: the door closes, the PIR sees movement, the door opens 1-10 min on.

    The door switch is wired with a pull-up: a closed contact pulls the pin low, which is
    "closed" when ``door_closed_when_active`` (as the node config says).
    """
    _check_speed(speed)
    door = factory.pin(door_pin)
    pir = factory.pin(pir_pin) if pir_pin is not None else None

    def set_door(closed: bool) -> None:
        if closed == door_closed_when_active:
            door.drive_low()
        else:
            door.drive_high()

    # gpiozero's MotionSensor samples ten times a second: a pulse must outlast a sample.
    pulse_s = max(2.0, 0.3 * speed)
    while not await pause(stop, rng.expovariate(1.0 / mean_gap_s), speed):
        duration = rng.uniform(*visit_s)
        log.debug("sim_visit", pin=door_pin, duration_s=round(duration, 1))
        set_door(True)
        elapsed = 0.0
        while elapsed < duration:
            step = min(rng.uniform(15.0, 90.0), duration - elapsed)
            if await pause(stop, step, speed):
                return
            elapsed += step
            if pir is not None and elapsed < duration:
                pir.drive_high()
                stopped = await pause(stop, pulse_s, speed)
                pir.drive_low()
                if stopped:
                    return
                elapsed += pulse_s
        set_door(False)


async def help_calls(
    factory: Any,
    *,
    pin: int | str,
    rng: random.Random,
    speed: float,
    stop: asyncio.Event,
    mean_gap_s: float = 4 * 3600.0,
) -> None:
    """Occasional presses of the help-call button (active low, pulled up)."""
    _check_speed(speed)
    button = factory.pin(pin)
    while not await pause(stop, rng.expovariate(1.0 / mean_gap_s), speed):
        log.info("sim_help_call", pin=pin)
        button.drive_low()
        stopped = await pause(stop, max(0.5, MIN_STEP_S * speed), speed)
        button.drive_high()
        if stopped:
            return


def health_payload(kind: str, rng: random.Random, now: datetime) -> bytes:
    """One plausible measurement of a resident on a device of ``kind``, encoded for GATT."""
    if kind == "scale":
        height = round(rng.uniform(1.45, 1.90), 2)
        weight = round(rng.gauss(22.0, 3.0) * height * height / 0.005) * 0.005
        return encode_weight_measurement(
            weight=weight,
            at=now,
            user_id=rng.randint(1, 4),  # the device's user slot: the agent must drop it
            bmi=round(weight / (height * height), 1),
            height=height,
        )
    if kind == "blood_pressure":
        systolic = round(rng.gauss(125, 15))
        diastolic = round(rng.gauss(80, 10))
        return encode_blood_pressure_measurement(
            systolic=systolic,
            diastolic=diastolic,
            mean_arterial=round(diastolic + (systolic - diastolic) / 3),
            pulse_bpm=round(rng.gauss(72, 10)),
            user_id=rng.randint(1, 4),
            status=MeasurementStatus(body_movement=rng.random() < 0.05),
            at=now,
        )
    if kind == "thermometer":
        return encode_temperature_measurement(
            temperature=round(rng.gauss(36.6, 0.35), 1),
            temperature_type=rng.choice(["armpit", "ear", "mouth"]),
            decimals=1,
        )
    raise ValueError(f"unknown health device kind {kind!r}; expected one of {list(HEALTH_UUIDS)}")


async def health_checks(
    devices: Sequence[tuple[SimulatedPeripheral, str]],
    *,
    rng: random.Random,
    speed: float,
    stop: asyncio.Event,
    mean_gap_s: float = 1800.0,
) -> None:
    """Residents using the scale, the blood-pressure monitor and the thermometer.

    ``devices`` pairs each peripheral with its kind (scale, blood_pressure, thermometer).
    """
    _check_speed(speed)
    if not devices:
        await stop.wait()
        return
    while not await pause(stop, rng.expovariate(1.0 / mean_gap_s), speed):
        peripheral, kind = rng.choice(devices)
        payload = health_payload(kind, rng, datetime.now(UTC).replace(microsecond=0))
        sent = peripheral.notify(HEALTH_UUIDS[kind], payload)
        log.debug("sim_health_check", address=peripheral.address, kind=kind, receivers=sent)


# --- vehicles --------------------------------------------------------------------------------


@dataclass
class Ride:
    """A simulated vehicle's running state: wheel, battery and where it is."""

    lat: float = TSUKUBA_STATION[0]
    lon: float = TSUKUBA_STATION[1]
    heading_rad: float = 0.0
    revolutions: float = 0.0
    clock_s: float = 0.0
    battery_pct: float = 100.0

    def advance(self, speed_mps: float, dt_s: float, circumference_m: float) -> None:
        """Ride ``dt_s`` seconds at ``speed_mps``: wheel turns, position moves, battery drains."""
        metres = speed_mps * dt_s
        self.revolutions += metres / circumference_m
        self.clock_s += dt_s
        self.lat += metres * math.cos(self.heading_rad) / _M_PER_DEG
        self.lon += (
            metres * math.sin(self.heading_rad) / (_M_PER_DEG * math.cos(math.radians(self.lat)))
        )
        # About 1 % every 200 m: a 20 km range.
        self.battery_pct = max(0.0, self.battery_pct - metres / 200.0)

    def steer(self, rng: random.Random, home: tuple[float, float], radius_m: float) -> None:
        """Wander, turning back towards ``home`` when farther than ``radius_m``."""
        north = (home[0] - self.lat) * _M_PER_DEG
        east = (home[1] - self.lon) * _M_PER_DEG * math.cos(math.radians(self.lat))
        if math.hypot(north, east) > radius_m:
            self.heading_rad = math.atan2(east, north)
        else:
            self.heading_rad += rng.gauss(0.0, 0.3)


async def vehicle_rides(
    *,
    hub: SimulatedPeripheral | None = None,
    factory: Any = None,
    hall_pin: int | str | None = None,
    pulses_per_revolution: int = 1,
    wheel_circumference_m: float = 2.1,
    rng: random.Random,
    speed: float,
    stop: asyncio.Event,
    home: tuple[float, float] = TSUKUBA_STATION,
    radius_m: float = 2000.0,
    mean_parked_s: float = 600.0,
    trip_s: tuple[float, float] = (300.0, 1200.0),
) -> None:
    """A vehicle riding trips around ``home``: wheel revolutions, battery, location.

    With ``hub``, the wheel is reported as CSC Measurement notifications (unless ``hall_pin``
    is given) along with Battery Level and Location and Speed; with ``factory`` and
    ``hall_pin``, the wheel pulses that pin low ``pulses_per_revolution`` times a turn.
    """
    _check_speed(speed)
    ride = Ride(lat=home[0], lon=home[1])
    hall = factory.pin(hall_pin) if factory is not None and hall_pin is not None else None
    pulses_sent = 0
    # One sensor update a second of scenario time, but never faster than MIN_STEP_S real time.
    dt = max(1.0, MIN_STEP_S * speed)

    def report(speed_mps: float) -> None:
        nonlocal pulses_sent
        if hall is not None:
            due = math.floor(ride.revolutions * pulses_per_revolution)
            for _ in range(due - pulses_sent):
                hall.drive_low()
                hall.drive_high()
            pulses_sent = due
        if hub is None:
            return
        if hall is None:
            hub.notify(
                "2a5b",
                encode_csc_measurement(
                    wheel_revolutions=math.floor(ride.revolutions),
                    wheel_event_time_s=ride.clock_s,
                ),
            )
        hub.notify(
            "2a67",
            encode_location_and_speed(
                speed_m_s=round(speed_mps, 2), latitude_deg=ride.lat, longitude_deg=ride.lon
            ),
        )

    battery_sent = -1
    while not await pause(stop, rng.expovariate(1.0 / mean_parked_s), speed):
        length = rng.uniform(*trip_s)
        cruise = rng.uniform(3.0, 6.0)
        log.debug("sim_trip", minutes=round(length / 60, 1))
        ridden = 0.0
        while ridden < length:
            ride.steer(rng, home, radius_m)
            v = max(0.0, rng.gauss(cruise, 0.7))
            ride.advance(v, dt, wheel_circumference_m)
            report(v)
            if hub is not None and round(ride.battery_pct) != battery_sent:
                battery_sent = round(ride.battery_pct)
                hub.notify("2a19", encode_battery_level(percent=battery_sent))
            if await pause(stop, dt, speed):
                return
            ridden += dt
        if ride.battery_pct < 20:
            ride.battery_pct = 100.0  # swapped at the depot
        report(0.0)


def hub_characteristics() -> dict[str, bytes]:
    """Initial values of a vehicle sensor hub's characteristics (battery, CSC, location)."""
    return {
        "2a19": encode_battery_level(percent=100),
        "2a5b": encode_csc_measurement(wheel_revolutions=0, wheel_event_time_s=0.0),
        "2a67": encode_location_and_speed(
            speed_m_s=0.0, latitude_deg=TSUKUBA_STATION[0], longitude_deg=TSUKUBA_STATION[1]
        ),
    }


def health_characteristics(kind: str) -> dict[str, bytes]:
    """Initial value of a health device's measurement characteristic."""
    return {HEALTH_UUIDS[kind]: health_payload(kind, random.Random(0), datetime.now(UTC))}


async def _parked_vehicle(
    peripheral: SimulatedPeripheral,
    vehicle_id: int,
    *,
    manufacturer_id: int,
    rng: random.Random,
    speed: float,
    stop: asyncio.Event,
    mean_stay_s: float,
    mean_away_s: float,
) -> None:
    charge = rng.randint(15, 100)
    odometer = rng.randint(0, 3_000_000)
    present = rng.random() < 0.7
    peripheral.in_range = present
    while not stop.is_set():
        if present:
            stay = rng.expovariate(1.0 / mean_stay_s)
            charging = charge < 80 and rng.random() < 0.5
            fault = rng.random() < 0.03
            left = stay
            while left > 0:
                advert = MobilityAdvert(
                    vehicle_id=vehicle_id,
                    state_of_charge=charge if rng.random() > 0.02 else None,
                    odometer_m=odometer,
                    speed_kmh=0.0,
                    charging=charging,
                    fault=fault,
                    low_battery=charge < 20,
                    error_code=0x0101 if fault else 0,
                )
                peripheral.set_advert(manufacturer_data={manufacturer_id: advert.encode()})
                step = min(60.0, left)
                if await pause(stop, step, speed):
                    return
                left -= step
                if charging:
                    charge = min(100, charge + 1)
            peripheral.in_range = False
        else:
            if await pause(stop, rng.expovariate(1.0 / mean_away_s), speed):
                return
            ridden = rng.randint(500, 8000)
            odometer += ridden
            charge = max(0, charge - ridden // 200)
            peripheral.in_range = True
        present = not present


async def station_fleet(
    world: SimulatedRadio,
    *,
    manufacturer_id: int,
    rng: random.Random,
    speed: float,
    stop: asyncio.Event,
    vehicles: int = 6,
    first_vehicle_id: int = 1001,
    mean_stay_s: float = 1800.0,
    mean_away_s: float = 900.0,
) -> None:
    """Vehicles parking at a station and leaving again, advertising their state meanwhile.

    Adds ``vehicles`` peripherals to ``world`` (addresses ``C0:FF:EE:5A:xx:xx``) and removes
    them when stopped.
    """
    _check_speed(speed)
    peripherals: list[SimulatedPeripheral] = []
    tasks = []
    for i in range(vehicles):
        vehicle_id = first_vehicle_id + i
        peripheral = world.add_peripheral(
            SimulatedPeripheral(
                f"C0:FF:EE:5A:{vehicle_id >> 8 & 0xFF:02X}:{vehicle_id & 0xFF:02X}",
                f"mobility-{vehicle_id}",
                manufacturer_data={manufacturer_id: MobilityAdvert(vehicle_id=vehicle_id).encode()},
                advert_interval_s=1.0,
                rssi=rng.randint(-85, -55),
            )
        )
        peripherals.append(peripheral)
        tasks.append(
            _parked_vehicle(
                peripheral,
                vehicle_id,
                manufacturer_id=manufacturer_id,
                rng=random.Random(rng.getrandbits(64)),
                speed=speed,
                stop=stop,
                mean_stay_s=mean_stay_s,
                mean_away_s=mean_away_s,
            )
        )
    try:
        await asyncio.gather(*tasks)
    finally:
        for peripheral in peripherals:
            world.remove_peripheral(peripheral)
