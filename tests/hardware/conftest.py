"""Fixtures for hardware tests: a simulated radio world and gpiozero's mock pins."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero import Device

from hardware.gpio import pin_factory
from hardware.sim import SimulatedRadio, set_current_world

#: The longest any test waits for a condition before failing.
WAIT_LIMIT_S = 10.0


@pytest.fixture
def sim_radio() -> Iterator[SimulatedRadio]:
    """A fresh simulated world, current for the test; the previous world is restored after."""
    world = SimulatedRadio()
    previous = set_current_world(world)
    try:
        yield world
    finally:
        set_current_world(previous)


@pytest.fixture
def mock_pins() -> Iterator[Any]:
    """gpiozero's MockFactory, also as the default factory for the test; restored after."""
    factory = pin_factory("mock")
    previous = Device.pin_factory
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        Device.pin_factory = previous
        factory.reset()  # mock pins are shared by every MockFactory; leave none behind


async def _wait_until(condition: Callable[[], bool], *, what: str = "condition") -> None:
    try:
        async with asyncio.timeout(WAIT_LIMIT_S):
            # The conditions are counters and flags of the code under test, which offers no
            # event for them; polling the loop between callbacks is the honest way to wait.
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError(f"{what} not met within {WAIT_LIMIT_S}s") from None


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """``await wait_until(lambda: ..., what="...")``: poll the event loop until true, bounded."""
    return _wait_until
