"""The restroom agent's GPIO side: stall doors, PIRs and the help-call button on mock pins."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from gpiozero.pins.mock import MockFactory

from edge.agents.base import AgentContext
from edge.agents.restroom import RestroomAgent
from edge.agents.testing import ManualClock, RecordingEmit, wait_until
from edge.config import NodeConfig

T0 = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
DOOR, PIR, HELP, DOOR_B = 17, 27, 22, 5


def make_agent(
    *, occupancy_interval_s: float = 3600.0, **restroom
) -> tuple[RestroomAgent, RecordingEmit, ManualClock, MockFactory]:
    section = {
        "stalls": [
            {"name": "1", "door_pin": DOOR, "pir_pin": PIR},
            {"name": "2", "door_pin": DOOR_B},
        ],
        "help_button_pin": HELP,
        "occupancy_interval_s": occupancy_interval_s,
        **restroom,
    }
    cfg = NodeConfig.model_validate(
        {"node": {"id": "rr-01", "kind": "restroom"}, "restroom": section}
    )
    emit, clock, factory = RecordingEmit(), ManualClock(T0), MockFactory()
    ctx = AgentContext(node="rr-01", config=cfg, emit=emit, pin_factory=factory, clock=clock)
    return RestroomAgent(ctx, bounce_s=None), emit, clock, factory


def run_with(agent: RestroomAgent, body: Callable[[], Awaitable[None]]) -> int:
    """Run the agent around ``body``; returns the loop's thread id."""

    async def main() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await asyncio.wait_for(agent.ready.wait(), 5)
            await body()
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
        return threading.get_ident()

    return asyncio.run(main())


def test_door_close_and_open_give_visit_start_and_end_with_duration():
    agent, emit, clock, factory = make_agent()

    async def body() -> None:
        factory.pin(DOOR).drive_low()  # the closed contact pulls the pin low
        await wait_until(lambda: emit.of("visit"))
        clock.advance(182.5)
        factory.pin(DOOR).drive_high()
        await wait_until(lambda: len(emit.of("visit")) == 2)

    run_with(agent, body)
    start, end = emit.of("visit")
    assert start.sensor == end.sensor == "stall-1"
    assert start.tags == {"stall": "1"}
    assert start.fields == {"event": "start", "occupied": True}
    assert start.at == T0
    assert end.fields == {"event": "end", "occupied": False, "duration_s": 182.5}
    assert end.at == clock()


def test_door_wired_the_other_way_round_is_honoured():
    agent, emit, clock, factory = make_agent(
        stalls=[{"name": "9", "door_pin": DOOR, "door_closed_when_active": False}]
    )

    async def body() -> None:
        # The pull-up holds the pin high: inactive, which for this switch means closed.
        factory.pin(DOOR).drive_low()  # opens
        await wait_until(lambda: emit.of("visit"))
        factory.pin(DOOR).drive_high()  # closes
        await wait_until(lambda: len(emit.of("visit")) == 2)
        clock.advance(30)
        factory.pin(DOOR).drive_low()
        await wait_until(lambda: len(emit.of("visit")) == 3)

    run_with(agent, body)
    assert [r.fields["event"] for r in emit.of("visit")] == ["end", "start", "end"]
    assert emit.of("visit")[2].fields["duration_s"] == 30.0


def test_events_from_gpio_threads_are_emitted_on_the_loop_thread():
    agent, emit, _clock, factory = make_agent()

    async def body() -> None:
        await asyncio.to_thread(factory.pin(DOOR).drive_low)
        await asyncio.to_thread(factory.pin(HELP).drive_low)
        await wait_until(lambda: emit.of("visit") and emit.of("help_call"))

    loop_thread = run_with(agent, body)
    assert emit.threads == {loop_thread}


def test_help_call_is_emitted_at_once_and_urgent():
    agent, emit, _clock, factory = make_agent()

    async def body() -> None:
        factory.pin(HELP).drive_low()
        await wait_until(lambda: emit.of("help_call"))

    run_with(agent, body)
    [call] = emit.of("help_call")
    assert call.fields == {"pressed": True}
    assert call.sensor == "help-button"
    assert emit.urgent[emit.readings.index(call)] is True
    assert agent.help_calls == 1


def test_occupancy_counts_pir_activations_and_closed_seconds_per_interval():
    agent, emit, clock, factory = make_agent()

    async def body() -> None:
        stall = agent.stalls["1"]

        def counted(n: int) -> Callable[[], bool]:
            return lambda: stall.motion_count == n

        for n in (1, 2, 3):
            factory.pin(PIR).drive_high()
            await wait_until(counted(n))
            factory.pin(PIR).drive_low()
            await wait_until(lambda: not stall.pir.is_active)
        clock.advance(100)
        factory.pin(DOOR).drive_low()
        await wait_until(lambda: emit.of("visit"))
        clock.advance(60)
        factory.pin(DOOR).drive_high()
        await wait_until(lambda: len(emit.of("visit")) == 2)
        clock.advance(40)
        factory.pin(DOOR).drive_low()  # still closed when the interval ends
        await wait_until(lambda: len(emit.of("visit")) == 3)
        clock.advance(15)
        agent.report_occupancy()
        clock.advance(25)
        agent.report_occupancy()

    run_with(agent, body)
    by_stall = {
        name: [r.fields for r in emit.of("occupancy") if r.tags == {"stall": name}]
        for name in ("1", "2")
    }
    assert by_stall["1"] == [
        {"occupied_s": 75.0, "motion_count": 3},
        {"occupied_s": 25.0, "motion_count": 0},
    ]
    # Stall 2 has no PIR: no motion count is claimed for it.
    assert by_stall["2"] == [{"occupied_s": 0.0}, {"occupied_s": 0.0}]


def test_occupancy_is_reported_every_interval():
    agent, emit, _clock, _factory = make_agent(occupancy_interval_s=0.01)

    async def body() -> None:
        await wait_until(lambda: len(emit.of("occupancy")) >= 4)

    run_with(agent, body)
    sensors = {r.sensor for r in emit.of("occupancy")}
    assert sensors == {"stall-1", "stall-2"}


def test_door_closed_at_start_ends_without_a_made_up_duration():
    # Wired so that the idle pulled-up pin reads "closed": the door is closed at start-up.
    agent, emit, clock, factory = make_agent(
        stalls=[{"name": "1", "door_pin": DOOR, "door_closed_when_active": False}]
    )

    async def body() -> None:
        clock.advance(20)
        factory.pin(DOOR).drive_low()
        await wait_until(lambda: emit.of("visit"))
        agent.report_occupancy()

    run_with(agent, body)
    [end] = emit.of("visit")
    assert end.fields == {"event": "end", "occupied": False}
    [occupancy] = emit.of("occupancy")
    assert occupancy.fields["occupied_s"] == 20.0


def test_a_pin_that_cannot_be_opened_does_not_stop_the_other_stalls():
    agent, emit, _clock, factory = make_agent(
        stalls=[{"name": "1", "door_pin": DOOR}, {"name": "2", "door_pin": DOOR}]
    )

    async def body() -> None:
        factory.pin(DOOR).drive_low()
        await wait_until(lambda: emit.of("visit"))

    run_with(agent, body)
    assert agent.gpio_errors == 1
    assert [r.sensor for r in emit.of("visit")] == ["stall-1"]


def test_close_releases_the_pins_and_is_idempotent():
    agent, _emit, _clock, factory = make_agent()

    async def body() -> None:
        pass

    run_with(agent, body)
    agent.close()
    agent.close()
    # Released pins can be claimed again by new devices.
    from gpiozero import Button

    with Button(DOOR, pin_factory=factory), Button(HELP, pin_factory=factory):
        pass


def test_sensors_are_announced_for_the_birth_message():
    agent, *_ = make_agent(health_devices=[{"address": "AA:BB:CC:00:00:01", "kind": "scale"}])
    assert agent.sensors == ("stall-1", "stall-2", "help-button", "health-scale")


@pytest.mark.parametrize("pin", ["GPIO17", 17])
def test_pins_may_be_named_or_numbered(pin):
    agent, emit, _clock, factory = make_agent(stalls=[{"name": "1", "door_pin": pin}])

    async def body() -> None:
        factory.pin(DOOR).drive_low()
        await wait_until(lambda: emit.of("visit"))

    run_with(agent, body)
    assert emit.of("visit")[0].fields["event"] == "start"
