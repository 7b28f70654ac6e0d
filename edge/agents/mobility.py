"""The mobility agent, on a micro-mobility vehicle: rides and trips from its wheel and hub.

Wheel movement comes from the sensor hub's CSC Measurement (0x2A5B) notifications or, instead,
from a hall sensor on GPIO counting wheel pulses. The hub also gives Battery Level (0x2A19,
read on connect and notified) and Location and Speed (0x2A67). Readings (``sensor`` left out:
each combines several sensors):

- ``ride``: every ``mobility.sample_interval_s`` while a trip is under way: ``speed_mps``,
  ``trip_distance_m``, and ``battery_pct``, ``lat``, ``lon`` (degrees, coarsened to the
  ``coarsen_m`` grid) when known;
- ``trip``: ``{"event": "start"}`` at the first wheel movement and ``{"event": "end",
  "distance_m": ..., "duration_s": ...}`` once the wheel stood still for ``trip_idle_s``, dated
  at the last movement.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from edge.agents.base import AgentContext, Emitter, supervise, wait_or_stop
from edge.agents.geo import coarsen
from edge.agents.trips import TripEnded, TripStarted, TripTracker
from protocol.messages import FieldValue

if TYPE_CHECKING:
    from hardware.ble import GattLink, Radio
    from hardware.gatt import Decoded

log = structlog.get_logger(__name__)

BATTERY_LEVEL = "2a19"
CSC_MEASUREMENT = "2a5b"
LOCATION_AND_SPEED = "2a67"
#: CSC event times roll over every 64 s: a longer gap between notifications gives no speed.
CSC_TIME_SPAN_S = 64.0


class MobilityAgent:
    """Rides and trips of one vehicle, from a BLE sensor hub and/or a GPIO hall sensor.

    >>> from edge.config import NodeConfig
    >>> cfg = NodeConfig.model_validate({"node": {"id": "mv-07", "kind": "vehicle"},
    ...     "mobility": {"gatt_address": "C0:FF:EE:00:00:07"}})
    >>> MobilityAgent(AgentContext(node="mv-07", config=cfg,
    ...     emit=lambda r, urgent=False: None)).sensors
    ('csc', 'battery', 'location')
    """

    name = "mobility"

    def __init__(
        self,
        ctx: AgentContext,
        *,
        retry_s: float = 30.0,
        backoff_min: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        self._ctx = ctx
        self._cfg = ctx.config.mobility
        self._out = Emitter(ctx.node, ctx.emit, ctx.clock)
        self._retry_s = retry_s
        self._backoff = (backoff_min, backoff_max)
        self._circumference_m = self._cfg.wheel_circumference_mm / 1000.0
        self.trips = TripTracker(self._cfg.trip_idle_s)
        self.battery_pct: float | None = None
        self.position: tuple[float, float] | None = None
        self._csc_previous: Decoded | None = None
        self._csc_previous_at: float | None = None
        self._csc_speed: float | None = None
        self._window_m = 0.0
        self._window_start: datetime | None = None
        self._hall: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.link: GattLink | None = None
        self.pulses = 0
        self.decode_errors = 0
        self.gpio_errors = 0
        #: Set once the hall sensor (if any) is open.
        self.ready = asyncio.Event()
        sensors: list[str] = []
        if self._cfg.gatt_address:
            sensors += ["battery", "location"]
            if self._cfg.hall_pin is None:
                sensors.insert(0, "csc")
        if self._cfg.hall_pin is not None:
            sensors.insert(0, "hall")
        self.sensors: tuple[str, ...] = tuple(sensors)

    # --- movement --------------------------------------------------------------------------------

    def moved(self, at: datetime, distance_m: float) -> None:
        """The wheel covered ``distance_m`` up to ``at``: feed the trip machine and the window."""
        if not distance_m > 0:
            return
        self._window_m += distance_m
        started = self.trips.moved(at, distance_m)
        if started is not None:
            self._trip_started(started)

    def _trip_started(self, started: TripStarted) -> None:
        log.info("trip_started", node=self._ctx.node)
        self._window_start = started.at
        self._out.emit("trip", {"event": "start"}, at=started.at)

    def _trip_ended(self, ended: TripEnded) -> None:
        log.info(
            "trip_ended",
            node=self._ctx.node,
            distance_m=ended.distance_m,
            duration_s=ended.duration_s,
        )
        self._out.emit(
            "trip",
            {"event": "end", "distance_m": ended.distance_m, "duration_s": ended.duration_s},
            at=ended.at,
        )
        self._csc_speed = None
        self._window_m = 0.0

    def _decode(self, uuid: str, payload: bytes) -> Decoded | None:
        from hardware.errors import DecodeError
        from hardware.gatt import decoder_for

        try:
            return decoder_for(uuid)(payload)
        except DecodeError as exc:
            self.decode_errors += 1
            log.warning(
                "vehicle_payload_undecodable",
                node=self._ctx.node,
                address=self._cfg.gatt_address,
                characteristic=uuid,
                error=str(exc),
            )
            return None

    def on_csc(self, payload: bytes) -> None:
        """A CSC Measurement notification: movement since the previous one."""
        from hardware.gatt import csc_motion

        current = self._decode(CSC_MEASUREMENT, payload)
        if current is None or "wheel_revolutions" not in current.fields:
            return
        now_mono = asyncio.get_running_loop().time()
        previous, previous_at = self._csc_previous, self._csc_previous_at
        self._csc_previous, self._csc_previous_at = current, now_mono
        if previous is None or previous_at is None:
            return
        motion = csc_motion(previous, current, wheel_circumference_m=self._circumference_m)
        if now_mono - previous_at < CSC_TIME_SPAN_S and motion.speed_m_s is not None:
            self._csc_speed = motion.speed_m_s
        if motion.distance_m is not None:
            self.moved(self._ctx.clock(), motion.distance_m)

    def on_battery(self, payload: bytes) -> None:
        """A Battery Level read or notification."""
        decoded = self._decode(BATTERY_LEVEL, payload)
        if decoded is not None:
            self.battery_pct = float(decoded.fields["battery_pct"])

    def on_location(self, payload: bytes) -> None:
        """A Location and Speed notification: the position, coarsened."""
        decoded = self._decode(LOCATION_AND_SPEED, payload)
        if decoded is None:
            return
        fields = decoded.fields
        if fields.get("position_status") == "none" or "latitude_deg" not in fields:
            return
        lat, lon = float(fields["latitude_deg"]), float(fields["longitude_deg"])
        self.position = coarsen(lat, lon, self._cfg.coarsen_m)

    def _hall_pulse(self, at: datetime) -> None:
        self.pulses += 1
        self.moved(at, self._circumference_m / self._cfg.pulses_per_revolution)

    def _hall_edge(self) -> None:
        loop, at = self._loop, self._ctx.clock()
        if loop is None or loop.is_closed():
            return
        # The loop may close between the check and the call while the agent stops.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._hall_pulse, at)

    # --- periodic --------------------------------------------------------------------------------

    def sample(self) -> None:
        """End an idle trip, or emit a ``ride`` reading for the trip under way."""
        now = self._ctx.clock()
        ended = self.trips.tick(now)
        if ended is not None:
            self._trip_ended(ended)
            return
        if not self.trips.active:
            return
        start = self._window_start or now
        elapsed = (now - start).total_seconds()
        if self._csc_speed is not None:
            speed = self._csc_speed
        else:
            speed = self._window_m / elapsed if elapsed > 0 else 0.0
        fields: dict[str, FieldValue] = {
            "speed_mps": float(speed),
            "trip_distance_m": float(self.trips.distance_m),
        }
        if self.battery_pct is not None:
            fields["battery_pct"] = self.battery_pct
        if self.position is not None:
            fields["lat"], fields["lon"] = self.position
        self._out.emit("ride", fields, at=now)
        # A hub that stops notifying leaves no stale speed behind.
        self._csc_speed = None
        self._window_m, self._window_start = 0.0, now

    # --- the agent -------------------------------------------------------------------------------

    def _open_hall(self) -> bool:
        if self._cfg.hall_pin is None or self._hall is not None:
            return True
        from gpiozero import DigitalInputDevice

        try:
            # Hall switches are open-collector: pulled up, low while the magnet passes.
            hall = DigitalInputDevice(
                self._cfg.hall_pin, pull_up=True, pin_factory=self._ctx.pin_factory
            )
        except Exception as exc:  # gpiozero raises many kinds: pin in use, no such pin ...
            self.gpio_errors += 1
            log.error(
                "hall_gpio_failed", node=self._ctx.node, pin=self._cfg.hall_pin, error=repr(exc)
            )
            return False
        hall.when_activated = self._hall_edge
        self._hall = hall
        return True

    async def _sample_loop(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        hall_open = self._open_hall()
        self.ready.set()
        next_retry = loop.time() + self._retry_s
        while not await wait_or_stop(stop, self._cfg.sample_interval_s):
            self.sample()
            if not hall_open and loop.time() >= next_retry:
                hall_open = self._open_hall()
                next_retry = loop.time() + self._retry_s

    def _make_link(self, radio: Radio) -> GattLink:
        from hardware.ble import GattLink

        notify: dict[str, Callable[[bytes], None]] = {
            BATTERY_LEVEL: self.on_battery,
            LOCATION_AND_SPEED: self.on_location,
        }
        if self._cfg.hall_pin is None:
            notify[CSC_MEASUREMENT] = self.on_csc
        return GattLink(
            radio,
            self._cfg.gatt_address,
            notify=notify,
            read_on_connect={BATTERY_LEVEL: self.on_battery},
            backoff_min=self._backoff[0],
            backoff_max=self._backoff[1],
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the wheel and the hub until ``stop`` is set."""
        self._loop = asyncio.get_running_loop()
        node = self._ctx.node
        loops = [supervise("mobility_sample", node, self._sample_loop, stop)]
        radio = self._ctx.radio
        if self._cfg.gatt_address and radio is None:
            log.error("vehicle_hub_without_radio", node=node, address=self._cfg.gatt_address)
        elif self._cfg.gatt_address and radio is not None:
            self.link = self._make_link(radio)
            loops.append(supervise("vehicle_hub", node, self.link.run, stop))
        if not self._cfg.gatt_address and self._cfg.hall_pin is None:
            log.warning("vehicle_without_wheel_sensor", node=node)
        try:
            await asyncio.gather(*loops)
        finally:
            self.close()

    def close(self) -> None:
        """Close the hall sensor; safe to call more than once."""
        hall, self._hall = self._hall, None
        if hall is not None:
            try:
                hall.close()
            except Exception as exc:  # closing must not fail the shutdown
                log.warning("gpio_close_failed", node=self._ctx.node, error=repr(exc))
