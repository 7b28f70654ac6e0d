"""The restroom agent: stall doors and PIRs on GPIO, a help-call button, BLE health devices.

Readings (``sensor`` is ``stall-<name>`` for a stall, tag ``stall`` its name):

- ``visit``: ``{"event": "start", "occupied": True}`` when a stall door closes and
  ``{"event": "end", "occupied": False, "duration_s": ...}`` when it opens again;
- ``occupancy``: every ``restroom.occupancy_interval_s`` per stall, ``motion_count`` (PIR
  activations, int; only for stalls with a PIR) and ``occupied_s`` (seconds the door was closed
  within the interval);
- ``help_call``: ``{"pressed": True}`` at once, sent urgently;
- ``health_check``: anonymous results of the scale, blood-pressure monitor and thermometer
  (tag ``device``; ``kind`` is a tag the cloud reserves), with nothing that could tell who
  measured.

gpiozero calls back from its own threads; every event is handed to the asyncio loop with
``call_soon_threadsafe`` and only the loop's thread emits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from edge.agents.base import AgentContext, Emitter, supervise, wait_or_stop
from edge.config import HealthDeviceSection, StallSection
from protocol.limits import DEFAULT_LIMITS
from protocol.messages import FieldValue

if TYPE_CHECKING:
    from hardware.ble import GattLink, Radio
    from hardware.gatt import Decoded

log = structlog.get_logger(__name__)

#: GATT characteristic each kind of health device notifies its measurements on.
HEALTH_CHARACTERISTICS = {
    "scale": "2a9d",  # Weight Measurement
    "blood_pressure": "2a35",  # Blood Pressure Measurement
    "thermometer": "2a1c",  # Temperature Measurement
}

#: gpiozero Button hold time; "held" is not used, and close() waits up to this long.
HOLD_TIME_S = 0.05

#: Decoded fields that could tell who measured; never emitted.
IDENTIFYING_FIELDS = frozenset({"user_id", "user_index", "user"})


def anonymous_fields(decoded: Decoded) -> dict[str, FieldValue]:
    """A decoded health measurement's fields without anything that identifies the person."""
    return {
        k: v
        for k, v in decoded.fields.items()
        if k not in IDENTIFYING_FIELDS and not k.startswith("user_")
    }


def _seconds(later: datetime, earlier: datetime) -> float:
    # A clock stepped backwards (NTP after a power cut) must not give negative durations.
    return max(0.0, (later - earlier).total_seconds())


@dataclass
class StallState:
    """What the agent knows about one stall between occupancy reports."""

    name: str
    closed: bool = False
    #: When the current visit started; None while open, or when it was closed at start-up.
    visit_start: datetime | None = None
    #: Start of the closed time not yet added to ``closed_s``.
    segment_start: datetime | None = None
    closed_s: float = 0.0
    motion_count: int = 0
    has_pir: bool = False
    #: The open gpiozero devices (door switch, PIR), closed together.
    devices: list[Any] = field(default_factory=list)
    pir: Any = None

    @property
    def sensor(self) -> str:
        return f"stall-{self.name}"

    def close_door(self, at: datetime) -> bool:
        """The door closed at ``at``; False if it already was (a repeated edge)."""
        if self.closed:
            return False
        self.closed, self.visit_start, self.segment_start = True, at, at
        return True

    def open_door(self, at: datetime) -> tuple[bool, float | None]:
        """The door opened at ``at``: (whether it was closed, the visit's duration if known)."""
        if not self.closed:
            return False, None
        if self.segment_start is not None:
            self.closed_s += _seconds(at, self.segment_start)
        duration = _seconds(at, self.visit_start) if self.visit_start is not None else None
        self.closed, self.visit_start, self.segment_start = False, None, None
        return True, duration

    def roll(self, now: datetime) -> tuple[int, float]:
        """End the occupancy interval at ``now``: (PIR activations, seconds closed) in it."""
        occupied = self.closed_s
        if self.closed and self.segment_start is not None:
            occupied += _seconds(now, self.segment_start)
            self.segment_start = now
        count, self.motion_count, self.closed_s = self.motion_count, 0, 0.0
        return count, occupied


class RestroomAgent:
    """Stall doors, PIRs and the help-call button on GPIO, and BLE health-check devices.

    >>> from gpiozero.pins.mock import MockFactory
    >>> from edge.config import NodeConfig
    >>> cfg = NodeConfig.model_validate({
    ...     "node": {"id": "rr-01", "kind": "restroom"},
    ...     "restroom": {"stalls": [{"name": "1", "door_pin": 17, "pir_pin": 27}],
    ...                  "help_button_pin": 22}})
    >>> agent = RestroomAgent(AgentContext(node="rr-01", config=cfg,
    ...     emit=lambda r, urgent=False: None, pin_factory=MockFactory()))
    >>> agent.sensors
    ('stall-1', 'help-button')
    """

    name = "restroom"

    def __init__(
        self,
        ctx: AgentContext,
        *,
        bounce_s: float | None = 0.05,
        retry_s: float = 30.0,
        backoff_min: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        self._ctx = ctx
        self._cfg = ctx.config.restroom
        self._out = Emitter(ctx.node, ctx.emit, ctx.clock)
        self._bounce_s = bounce_s
        self._retry_s = retry_s
        self._backoff = (backoff_min, backoff_max)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stalls = {
            s.name: StallState(s.name, has_pir=s.pir_pin is not None) for s in self._cfg.stalls
        }
        self._help: Any = None
        self._decoders: dict[str, Callable[[bytes], Decoded]] = {}
        self._closed = False
        #: Set once every GPIO device is open and the PIRs have taken their first sample.
        self.ready = asyncio.Event()
        self.help_calls = 0
        self.decode_errors = 0
        self.gpio_errors = 0
        self.links: list[GattLink] = []
        sensors = [s.sensor for s in self.stalls.values()]
        if self._cfg.help_button_pin is not None:
            sensors.append("help-button")
        sensors += [f"health-{d.kind}" for d in self._cfg.health_devices]
        self.sensors: tuple[str, ...] = tuple(dict.fromkeys(sensors))

    # --- gpiozero threads -> loop ----------------------------------------------------------------

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # The loop may close between the check and the call while the agent stops.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, *args)

    def _door_edge(self, stall: str, closed: bool) -> Callable[[], None]:
        def edge() -> None:
            self._to_loop(self._door_changed, stall, closed, self._ctx.clock())

        return edge

    def _motion_edge(self, stall: str) -> Callable[[], None]:
        def edge() -> None:
            self._to_loop(self._motion, stall)

        return edge

    def _help_edge(self) -> None:
        self._to_loop(self._help_pressed, self._ctx.clock())

    # --- on the loop -----------------------------------------------------------------------------

    def _door_changed(self, name: str, closed: bool, at: datetime) -> None:
        stall = self.stalls[name]
        tags = {"stall": name}
        if closed:
            if stall.close_door(at):
                log.info("stall_door_closed", node=self._ctx.node, stall=name)
                self._out.emit(
                    "visit",
                    {"event": "start", "occupied": True},
                    at=at,
                    sensor=stall.sensor,
                    tags=tags,
                )
            return
        was_closed, duration = stall.open_door(at)
        if not was_closed:
            return
        log.info("stall_door_opened", node=self._ctx.node, stall=name, duration_s=duration)
        fields: dict[str, FieldValue] = {"event": "end", "occupied": False}
        if duration is not None:
            fields["duration_s"] = duration
        self._out.emit("visit", fields, at=at, sensor=stall.sensor, tags=tags)

    def _motion(self, name: str) -> None:
        self.stalls[name].motion_count += 1

    def _help_pressed(self, at: datetime) -> None:
        self.help_calls += 1
        log.warning("help_call", node=self._ctx.node, sensor="help-button")
        self._out.emit("help_call", {"pressed": True}, at=at, sensor="help-button", urgent=True)

    def report_occupancy(self) -> None:
        """Emit one ``occupancy`` reading per stall for the interval ending now."""
        now = self._ctx.clock()
        for stall in self.stalls.values():
            count, occupied = stall.roll(now)
            fields: dict[str, FieldValue] = {"occupied_s": occupied}
            if stall.has_pir:
                fields["motion_count"] = count
            self._out.emit(
                "occupancy", fields, at=now, sensor=stall.sensor, tags={"stall": stall.name}
            )

    # --- GPIO devices ----------------------------------------------------------------------------

    def _open_stall(self, cfg: StallSection) -> None:
        from gpiozero import Button, MotionSensor

        stall = self.stalls[cfg.name]
        door = Button(
            cfg.door_pin,
            pull_up=True,
            bounce_time=self._bounce_s,
            # No "held" events are used; a short hold time lets close() return quickly
            # while the door is closed (gpiozero's hold thread waits that long).
            hold_time=HOLD_TIME_S,
            pin_factory=self._ctx.pin_factory,
        )
        stall.devices.append(door)
        closed_now = bool(door.is_active) == cfg.door_closed_when_active
        if closed_now:
            # Its visit began before we could see it: count the closed time, but no duration.
            at = self._ctx.clock()
            stall.closed, stall.segment_start = True, at
            log.info("stall_closed_at_start", node=self._ctx.node, stall=cfg.name)
        closed_on = cfg.door_closed_when_active
        door.when_activated = self._door_edge(cfg.name, closed_on)
        door.when_deactivated = self._door_edge(cfg.name, not closed_on)
        if cfg.pir_pin is not None:
            pir = MotionSensor(cfg.pir_pin, pin_factory=self._ctx.pin_factory)
            stall.devices.append(pir)
            stall.pir = pir
            pir.when_motion = self._motion_edge(cfg.name)

    def _open_gpio(self) -> bool:
        """Open the devices not yet open; True when all are."""
        ok = True
        for cfg in self._cfg.stalls:
            if self.stalls[cfg.name].devices:
                continue
            try:
                self._open_stall(cfg)
            except Exception as exc:  # gpiozero raises many kinds: pin in use, no such pin ...
                ok = False
                self.gpio_errors += 1
                self._close_devices(self.stalls[cfg.name].devices)
                self.stalls[cfg.name].pir = None
                log.error(
                    "stall_gpio_failed",
                    node=self._ctx.node,
                    stall=cfg.name,
                    pin=cfg.door_pin,
                    error=repr(exc),
                )
        pin = self._cfg.help_button_pin
        if pin is not None and self._help is None:
            from gpiozero import Button

            try:
                self._help = Button(
                    pin,
                    pull_up=True,
                    bounce_time=self._bounce_s,
                    hold_time=HOLD_TIME_S,
                    pin_factory=self._ctx.pin_factory,
                )
                self._help.when_pressed = self._help_edge
            except Exception as exc:
                ok = False
                self.gpio_errors += 1
                log.error("help_button_gpio_failed", node=self._ctx.node, pin=pin, error=repr(exc))
        return ok

    def _wait_first_samples(self) -> None:
        # gpiozero's MotionSensor takes its first reading as the baseline and fires no event
        # for it; wait for that so a PIR pulse right after start is counted.
        for stall in self.stalls.values():
            pir = stall.pir
            while pir is not None and not self._closed:
                if pir.wait_for_inactive(0.05) or pir.wait_for_active(0):
                    break

    async def _gpio_loop(self, stop: asyncio.Event) -> None:
        all_open = self._open_gpio()
        await asyncio.to_thread(self._wait_first_samples)
        self.ready.set()
        deadline = asyncio.get_running_loop().time() + self._cfg.occupancy_interval_s
        retry_at = asyncio.get_running_loop().time() + self._retry_s
        while True:
            now = asyncio.get_running_loop().time()
            wake = deadline if all_open else min(deadline, retry_at)
            if await wait_or_stop(stop, max(0.0, wake - now)):
                return
            now = asyncio.get_running_loop().time()
            if now >= deadline:
                self.report_occupancy()
                deadline += self._cfg.occupancy_interval_s
                deadline = max(deadline, now)
            if not all_open and now >= retry_at:
                all_open = self._open_gpio()
                retry_at = now + self._retry_s

    # --- BLE health devices ----------------------------------------------------------------------

    def health_payload(self, device: HealthDeviceSection, payload: bytes) -> None:
        """Turn one notification of a health device into an anonymous ``health_check``."""
        from hardware.errors import DecodeError
        from hardware.gatt import decoder_for

        uuid = HEALTH_CHARACTERISTICS[device.kind]
        decoder = self._decoders.get(uuid)
        if decoder is None:
            decoder = self._decoders[uuid] = decoder_for(uuid)
        try:
            decoded = decoder(payload)
        except DecodeError as exc:
            self.decode_errors += 1
            log.warning(
                "health_payload_undecodable",
                node=self._ctx.node,
                address=device.address,
                kind=device.kind,
                error=str(exc),
            )
            return
        fields = anonymous_fields(decoded)
        if not fields:
            self.decode_errors += 1
            log.warning("health_payload_empty", node=self._ctx.node, address=device.address)
            return
        now = self._ctx.clock()
        at = decoded.at if decoded.at is not None else now
        if not now - DEFAULT_LIMITS.max_age < at <= now + DEFAULT_LIMITS.max_future_skew:
            # The cloud would refuse it; a device with an unset clock still measured just now.
            log.info(
                "health_device_clock_off",
                node=self._ctx.node,
                address=device.address,
                device_time=at.isoformat(),
            )
            at = now
        self._out.emit(
            "health_check",
            fields,
            at=at,
            sensor=f"health-{device.kind}",
            tags={"device": device.kind},
        )

    def _health_link(self, radio: Radio, device: HealthDeviceSection) -> GattLink:
        from hardware.ble import GattLink

        uuid = HEALTH_CHARACTERISTICS[device.kind]

        def on_notify(payload: bytes) -> None:
            self.health_payload(device, payload)

        return GattLink(
            radio,
            device.address,
            notify={uuid: on_notify},
            backoff_min=self._backoff[0],
            backoff_max=self._backoff[1],
        )

    # --- the agent -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Watch the sensors until ``stop`` is set."""
        self._loop = asyncio.get_running_loop()
        node = self._ctx.node
        loops = [supervise("restroom_gpio", node, self._gpio_loop, stop)]
        radio = self._ctx.radio
        if self._cfg.health_devices and radio is None:
            log.error("health_devices_without_radio", node=node)
        elif radio is not None:
            for device in self._cfg.health_devices:
                link = self._health_link(radio, device)
                self.links.append(link)
                loops.append(supervise(f"health_{device.kind}", node, link.run, stop))
        try:
            await asyncio.gather(*loops)
        finally:
            # A Button held active takes up to its hold time to close: not on the loop.
            await asyncio.to_thread(self.close)

    @staticmethod
    def _close_devices(devices: list[Any]) -> None:
        for device in devices:
            try:
                device.close()
            except Exception as exc:  # closing must go on for the other devices
                log.warning("gpio_close_failed", error=repr(exc))
        devices.clear()

    def close(self) -> None:
        """Close every GPIO device; safe to call more than once."""
        self._closed = True
        for stall in self.stalls.values():
            self._close_devices(stall.devices)
            stall.pir = None
        if self._help is not None:
            self._close_devices([self._help])
            self._help = None
