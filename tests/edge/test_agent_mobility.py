"""The mobility agent: trips, rides and position coarsening on a vehicle."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import given
from hypothesis import strategies as st

from edge.agents.base import AgentContext
from edge.agents.geo import coarsen, distance_m
from edge.agents.mobility import MobilityAgent
from edge.agents.testing import ManualClock, RecordingEmit, wait_until
from edge.agents.trips import TripEnded, TripStarted, TripTracker
from edge.config import NodeConfig
from hardware.ble import Radio
from hardware.gatt import (
    encode_battery_level,
    encode_csc_measurement,
    encode_location_and_speed,
)
from hardware.sim import SimulatedPeripheral, SimulatedRadio

T0 = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
HUB = "C0:FF:EE:00:00:07"
HALL = 6
TSUKUBA = (36.0827, 140.1115)


# --- the trip state machine --------------------------------------------------------------------


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_first_movement_starts_a_trip():
    trips = TripTracker(idle_s=120)
    assert trips.moved(at(0), 0.0) is None  # a repeated measurement is no movement
    assert trips.moved(at(5), 2.1) == TripStarted(at(5))
    assert trips.moved(at(6), 2.1) is None
    assert trips.active
    assert trips.distance_m == pytest.approx(4.2)


def test_trip_ends_after_idle_time_with_duration_from_first_to_last_movement():
    trips = TripTracker(idle_s=120)
    trips.moved(at(10), 3.0)
    trips.moved(at(70), 4.0)
    assert trips.tick(at(189)) is None
    ended = trips.tick(at(190))
    assert ended == TripEnded(started_at=at(10), at=at(70), distance_m=7.0)
    assert ended.duration_s == 60.0
    assert not trips.active
    assert trips.tick(at(500)) is None


def test_movement_after_a_trip_ended_starts_a_new_one():
    trips = TripTracker(idle_s=60)
    trips.moved(at(0), 1.0)
    trips.tick(at(100))
    assert trips.moved(at(200), 5.0) == TripStarted(at(200))
    ended = trips.tick(at(300))
    assert ended is not None
    assert ended.distance_m == 5.0
    assert ended.duration_s == 0.0


def test_trip_tracker_refuses_a_non_positive_idle_time():
    with pytest.raises(ValueError, match="idle_s"):
        TripTracker(idle_s=0)


# --- coarsening ---------------------------------------------------------------------------------

latitudes = st.floats(min_value=-85, max_value=85, allow_nan=False)
longitudes = st.floats(min_value=-179.9, max_value=179.9, allow_nan=False)
grids = st.floats(min_value=10, max_value=5000, allow_nan=False)


@given(latitudes, longitudes, grids)
def test_coarsened_point_is_its_cell_centre_near_the_point(lat, lon, grid):
    clat, clon = coarsen(lat, lon, grid)
    # Within half the cell's diagonal (plus the sphere's slack).
    assert distance_m(lat, lon, clat, clon) <= grid * 0.5 * 2**0.5 * 1.01
    assert coarsen(clat, clon, grid) == pytest.approx((clat, clon), abs=1e-9)


def test_points_in_one_cell_report_the_same_centre():
    a = coarsen(36.08270, 140.11150, 1000)
    b = coarsen(36.08275, 140.11160, 1000)  # a few metres away
    assert a == b
    assert a != TSUKUBA
    far = coarsen(36.1000, 140.1115, 1000)  # about 2 km north
    assert far != a


def test_zero_grid_keeps_the_position_exact():
    assert coarsen(*TSUKUBA, 0) == TSUKUBA


def test_coarsening_refuses_what_is_not_a_position():
    with pytest.raises(ValueError, match="latitude"):
        coarsen(95.0, 10.0, 100)
    with pytest.raises(ValueError, match="grid_m"):
        coarsen(36.0, 140.0, -1)


# --- the agent with a simulated sensor hub --------------------------------------------------------


def make_agent(
    *, hall: bool = False, **mobility
) -> tuple[MobilityAgent, RecordingEmit, ManualClock, SimulatedPeripheral, MockFactory]:
    world = SimulatedRadio()
    hub = world.add_peripheral(
        SimulatedPeripheral(
            HUB,
            "hub",
            characteristics={
                "2a19": encode_battery_level(percent=87),
                "2a5b": encode_csc_measurement(wheel_revolutions=0, wheel_event_time_s=0),
                "2a67": encode_location_and_speed(speed_m_s=0),
            },
        )
    )
    section = {
        "gatt_address": HUB,
        "wheel_circumference_mm": 2100,
        "coarsen_m": 250,
        "trip_idle_s": 120,
        "sample_interval_s": 0.01,
        **mobility,
    }
    if hall:
        section.update(hall_pin=HALL, pulses_per_revolution=2, wheel_circumference_mm=2000)
    cfg = NodeConfig.model_validate(
        {"node": {"id": "mv-07", "kind": "vehicle"}, "mobility": section}
    )
    emit, clock, factory = RecordingEmit(), ManualClock(T0), MockFactory()
    ctx = AgentContext(
        node="mv-07",
        config=cfg,
        emit=emit,
        pin_factory=factory,
        radio=Radio.open("simulated", world=world),
        clock=clock,
    )
    agent = MobilityAgent(ctx, backoff_min=0.01, backoff_max=0.05)
    return agent, emit, clock, hub, factory


def run_with(agent: MobilityAgent, body: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await wait_until(
                lambda: agent.ready.is_set() and agent.link and agent.link.is_connected
            )
            await body()
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)

    asyncio.run(main())


def csc(revolutions: int, seconds: float) -> bytes:
    return encode_csc_measurement(wheel_revolutions=revolutions, wheel_event_time_s=seconds)


def test_csc_revolutions_give_speed_distance_and_a_trip():
    agent, emit, clock, hub, _ = make_agent()

    async def body() -> None:
        hub.notify("2a67", encode_location_and_speed(latitude_deg=36.0827, longitude_deg=140.1115))
        hub.notify("2a5b", csc(100, 10.0))
        hub.notify("2a5b", csc(102, 11.0))  # 2 revolutions of 2.1 m in one second
        await wait_until(lambda: any(float(r.fields["speed_mps"]) > 0 for r in emit.of("ride")))
        clock.advance(30)
        hub.notify("2a5b", csc(112, 13.0))  # 10 more revolutions in two seconds
        await wait_until(
            lambda: any(float(r.fields["trip_distance_m"]) > 5 for r in emit.of("ride"))
        )
        clock.advance(120)  # standing still for trip_idle_s
        await wait_until(lambda: len(emit.of("trip")) == 2)

    run_with(agent, body)
    start, end = emit.of("trip")
    assert start.fields == {"event": "start"}
    assert start.at == T0
    assert end.fields == {"event": "end", "distance_m": pytest.approx(25.2), "duration_s": 30.0}
    assert end.at == T0 + timedelta(seconds=30)
    moving = [r.fields for r in emit.of("ride") if float(r.fields["speed_mps"]) > 0]
    assert moving[0]["speed_mps"] == pytest.approx(4.2)
    assert moving[0]["trip_distance_m"] == pytest.approx(4.2)
    assert moving[0]["battery_pct"] == 87.0  # read on connect
    assert (moving[0]["lat"], moving[0]["lon"]) == coarsen(*TSUKUBA, 250)
    assert moving[-1]["speed_mps"] == pytest.approx(10.5)
    assert all(r.at <= end.at for r in emit.of("ride"))


def test_no_ride_readings_while_standing_still():
    agent, emit, _clock, hub, _ = make_agent()

    async def body() -> None:
        hub.notify("2a5b", csc(5, 1.0))
        hub.notify("2a5b", csc(5, 1.0))  # the same measurement again: no movement
        hub.notify("2a19", encode_battery_level(percent=80))
        await wait_until(lambda: agent.battery_pct == 80.0)

    run_with(agent, body)
    assert emit.of("ride") == []
    assert emit.of("trip") == []


def test_malformed_hub_payloads_are_counted_not_emitted():
    agent, emit, _clock, hub, _ = make_agent()

    async def body() -> None:
        hub.notify("2a19", b"\xc8")  # 200 %
        hub.notify("2a5b", b"\x01\x00")  # truncated
        await wait_until(lambda: agent.decode_errors == 2)

    run_with(agent, body)
    assert agent.battery_pct == 87.0
    assert emit.readings == []


def test_hall_sensor_pulses_give_trip_distance():
    agent, emit, clock, _hub, factory = make_agent(hall=True)

    async def body() -> None:
        pin = factory.pin(HALL)
        for _ in range(5):
            pin.drive_low()  # the magnet passes
            pin.drive_high()
        await wait_until(lambda: agent.pulses == 5)
        clock.advance(10)
        await wait_until(lambda: emit.of("ride"))
        clock.advance(120)
        await wait_until(lambda: len(emit.of("trip")) == 2)

    run_with(agent, body)
    assert agent.sensors == ("hall", "battery", "location")
    end = emit.of("trip")[1]
    # Two pulses per revolution of 2 m: each pulse is 1 m.
    assert end.fields["distance_m"] == pytest.approx(5.0)
    assert emit.of("ride")[0].fields["trip_distance_m"] == pytest.approx(5.0)
