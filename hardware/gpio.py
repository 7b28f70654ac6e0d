"""GPIO pin factories: gpiozero's drivers chosen by name, by environment, or by detection.

The order follows gpiozero itself: an explicit name wins, then ``GPIOZERO_PIN_FACTORY``, then
auto-detection (lgpio, rpigpio, pigpio, native). The mock is never chosen silently: a host
without GPIO gets :class:`~hardware.errors.GpioError` unless "mock" is asked for.

Example::

    from gpiozero import Button
    from hardware.gpio import pin_factory

    factory = pin_factory("mock")
    door = Button(17, pin_factory=factory)
    factory.pin(17).drive_low()
    assert door.is_pressed
"""

from __future__ import annotations

import os
import warnings
from importlib.metadata import entry_points
from typing import Any

import structlog
from gpiozero import Factory

from hardware.errors import GpioError

log = structlog.get_logger(__name__)

#: Names accepted by :func:`pin_factory` (``gpio.pin_factory`` in the node config).
FACTORY_NAMES = ("mock", "lgpio", "rpigpio", "pigpio", "native")

#: Auto-detection order; gpiozero's own preference (lgpio first: PWM on every Pi, Pi 5 too).
DETECTION_ORDER = ("lgpio", "rpigpio", "pigpio", "native")

ENV_VAR = "GPIOZERO_PIN_FACTORY"

_ENTRY_POINT_GROUP = "gpiozero_pin_factories"


def pin_factory(name: str = "") -> Factory:
    """A gpiozero pin factory: ``name`` if given, else ``$GPIOZERO_PIN_FACTORY``, else detected.

    Raises :class:`GpioError` for an unknown name, a named factory that cannot start (its
    library is missing, or this is not a Pi), or a host where detection finds no GPIO.
    """
    if name:
        return _load(name, source="argument")
    env_name = os.environ.get(ENV_VAR, "")
    if env_name:
        return _load(env_name, source=ENV_VAR)
    return _detect()


def _load(name: str, *, source: str) -> Factory:
    key = name.strip().lower()
    if key not in FACTORY_NAMES:
        raise GpioError(
            f"unknown GPIO pin factory {name!r} (from {source}); "
            f"expected one of {', '.join(FACTORY_NAMES)}"
        )
    try:
        factory = _construct(key)
    except Exception as exc:
        raise GpioError(f"GPIO pin factory {key!r} (from {source}) cannot start: {exc}") from exc
    log.info("gpio_factory_chosen", factory=key, source=source)
    return factory


def _detect() -> Factory:
    reasons: list[str] = []
    for key in DETECTION_ORDER:
        try:
            factory = _construct(key)
        except Exception as exc:
            reasons.append(f"{key}: {exc}")
            continue
        log.warning("gpio_factory_detected", factory=key, hint=f"set {ENV_VAR} to choose")
        return factory
    raise GpioError(
        f'no GPIO here; set gpio.pin_factory = "mock" to simulate (tried {"; ".join(reasons)})'
    )


def _construct(key: str) -> Any:
    (entry,) = entry_points(group=_ENTRY_POINT_GROUP, name=key)
    with warnings.catch_warnings():
        # Factories warn when they fall back internally; that choice is ours to report, and
        # the project runs with warnings as errors.
        warnings.simplefilter("ignore")
        return entry.load()()
