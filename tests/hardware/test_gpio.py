"""GPIO pin factories: chosen by name, then environment, then detection; never a silent mock."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from gpiozero import Button, Device
from gpiozero.pins.mock import MockFactory
from structlog.testing import capture_logs

import hardware.gpio
from hardware.errors import GpioError
from hardware.gpio import ENV_VAR, pin_factory


def test_button_on_mock_pin_sees_drive_low(mock_pins: Any) -> None:
    pressed = threading.Event()
    with Button(17, pin_factory=mock_pins) as door:
        door.when_pressed = lambda: pressed.set()
        assert not door.is_pressed
        mock_pins.pin(17).drive_low()
        assert pressed.wait(timeout=5)
        assert door.is_pressed
        mock_pins.pin(17).drive_high()
        assert not door.is_pressed


def test_mock_is_gpiozeros_own_mock_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    factory = pin_factory("mock")
    try:
        assert isinstance(factory, MockFactory)
    finally:
        factory.reset()


def test_choosing_a_factory_leaves_gpiozeros_global_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    before = Device.pin_factory
    factory = pin_factory("mock")
    try:
        assert Device.pin_factory is before
    finally:
        factory.reset()


def test_environment_chooses_when_no_name_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "mock")
    factory = pin_factory()
    try:
        assert isinstance(factory, MockFactory)
    finally:
        factory.reset()


def test_explicit_name_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "no-such-factory")
    factory = pin_factory("MOCK")
    try:
        assert isinstance(factory, MockFactory)
    finally:
        factory.reset()


def test_unknown_name_is_refused_listing_the_choices() -> None:
    with pytest.raises(GpioError, match=r"'gpio9'.*mock, lgpio, rpigpio, pigpio, native"):
        pin_factory("gpio9")


def test_unknown_name_in_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "gpio9")
    with pytest.raises(GpioError, match=ENV_VAR):
        pin_factory()


def test_named_factory_that_cannot_start_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(key: str) -> Any:
        raise ModuleNotFoundError(f"No module named {key!r}")

    monkeypatch.setattr(hardware.gpio, "_construct", missing)
    with pytest.raises(GpioError, match=r"'lgpio'.*cannot start.*No module named"):
        pin_factory("lgpio")


def test_detection_without_gpio_refuses_and_points_to_mock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tried: list[str] = []

    def nothing_here(key: str) -> Any:
        tried.append(key)
        raise RuntimeError("not a Raspberry Pi")

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(hardware.gpio, "_construct", nothing_here)
    with pytest.raises(
        GpioError, match=r'^no GPIO here; set gpio\.pin_factory = "mock" to simulate'
    ):
        pin_factory()
    assert "mock" not in tried
    assert tried == ["lgpio", "rpigpio", "pigpio", "native"]


def test_detection_warns_naming_the_factory_it_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    found = object()

    def only_rpigpio(key: str) -> Any:
        if key != "rpigpio":
            raise ModuleNotFoundError(key)
        return found

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(hardware.gpio, "_construct", only_rpigpio)
    with capture_logs() as logs:
        assert pin_factory() is found
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [(e["event"], e["factory"]) for e in warnings] == [("gpio_factory_detected", "rpigpio")]
