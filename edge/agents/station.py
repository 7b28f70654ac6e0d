"""The station agent: parked vehicles heard passively through their mobility advertisements.

Each vehicle broadcasts :class:`hardware.mobility_adv.MobilityAdvert` in its manufacturer data;
the station never connects. Readings, tag ``vehicle`` = the vehicle id:

- ``vehicle_arrived`` when a vehicle is first heard;
- ``parked_vehicle`` at most once per ``station.report_interval_s`` per vehicle (the first at
  arrival): ``soc_pct``, ``odometer_m``, ``speed_mps``, ``rssi_dbm`` (floats), ``in_use``,
  ``charging``, ``fault``, ``low_battery``, ``tamper`` (booleans), ``error_code`` (int); an
  unknown charge or speed is left out, never sent as the advert's 0xFF / 0xFFFF;
- ``vehicle_left`` when it has not been heard for ``station.stale_after_s``, dated when it was
  last heard, with ``present_s`` (first to last heard).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from edge.agents.base import AgentContext, Emitter, supervise, wait_or_stop
from hardware.mobility_adv import MobilityAdvert
from protocol.errors import InvalidMessage
from protocol.messages import FieldValue

if TYPE_CHECKING:
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData

log = structlog.get_logger(__name__)

SENSOR = "ble-adverts"


def advert_fields(advert: MobilityAdvert, rssi: int | None) -> dict[str, FieldValue]:
    """A parked vehicle's fields from its advert; unknown values are left out.

    >>> advert_fields(MobilityAdvert(vehicle_id=7, state_of_charge=None, speed_kmh=36.0), -70)
    ... # doctest: +NORMALIZE_WHITESPACE
    {'odometer_m': 0.0, 'in_use': False, 'charging': False, 'fault': False,
     'low_battery': False, 'tamper': False, 'error_code': 0, 'speed_mps': 10.0,
     'rssi_dbm': -70.0}
    """
    fields: dict[str, FieldValue] = {}
    if advert.state_of_charge is not None:
        fields["soc_pct"] = float(advert.state_of_charge)
    fields["odometer_m"] = float(advert.odometer_m)
    fields["in_use"] = advert.in_use
    fields["charging"] = advert.charging
    fields["fault"] = advert.fault
    fields["low_battery"] = advert.low_battery
    fields["tamper"] = advert.tamper
    fields["error_code"] = advert.error_code
    if advert.speed_kmh is not None:
        fields["speed_mps"] = advert.speed_kmh / 3.6
    if rssi is not None:
        fields["rssi_dbm"] = float(rssi)
    return fields


@dataclass
class Vehicle:
    """What the station knows about one vehicle it hears."""

    vehicle_id: int
    address: str
    first_heard: datetime
    last_heard: datetime
    last_report: datetime | None = None

    @property
    def tags(self) -> dict[str, str]:
        return {"vehicle": str(self.vehicle_id)}


class StationAgent:
    """Parked vehicles at a station: arrivals, periodic state, departures.

    >>> from edge.config import NodeConfig
    >>> cfg = NodeConfig.model_validate({"node": {"id": "st-01", "kind": "station"}})
    >>> StationAgent(AgentContext(node="st-01", config=cfg,
    ...     emit=lambda r, urgent=False: None)).sensors
    ('ble-adverts',)
    """

    name = "station"

    def __init__(
        self,
        ctx: AgentContext,
        *,
        check_s: float | None = None,
        backoff_min: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        self._ctx = ctx
        self._cfg = ctx.config.station
        self._out = Emitter(ctx.node, ctx.emit, ctx.clock)
        shortest = min(self._cfg.report_interval_s, self._cfg.stale_after_s)
        #: How often departures are looked for (wall clock).
        self.check_s = check_s if check_s is not None else min(max(shortest / 4, 0.01), 5.0)
        self._backoff = (backoff_min, backoff_max)
        self.vehicles: dict[int, Vehicle] = {}
        self.bad_adverts = 0
        self.adverts = 0
        self.sensors: tuple[str, ...] = (SENSOR,)

    def on_advert(self, device: BLEDevice, advertisement: AdvertisementData) -> None:
        """One advertisement heard (on the loop's thread, from the scanner)."""
        data = advertisement.manufacturer_data.get(self._cfg.manufacturer_id)
        if data is None:
            return
        try:
            advert = MobilityAdvert.decode(bytes(data))
        except InvalidMessage as exc:
            self.bad_adverts += 1
            log.warning(
                "mobility_advert_invalid",
                node=self._ctx.node,
                address=device.address,
                error=str(exc),
            )
            return
        self.heard(advert, address=device.address, rssi=advertisement.rssi)

    def heard(self, advert: MobilityAdvert, *, address: str, rssi: int | None) -> None:
        """A decoded advert from ``address``: arrival, and a report when one is due."""
        self.adverts += 1
        now = self._ctx.clock()
        fields = advert_fields(advert, rssi)
        vehicle = self.vehicles.get(advert.vehicle_id)
        if vehicle is None:
            vehicle = Vehicle(advert.vehicle_id, address, first_heard=now, last_heard=now)
            self.vehicles[advert.vehicle_id] = vehicle
            log.info(
                "vehicle_arrived", node=self._ctx.node, vehicle=advert.vehicle_id, address=address
            )
            self._out.emit("vehicle_arrived", fields, at=now, sensor=SENSOR, tags=vehicle.tags)
        vehicle.last_heard = max(vehicle.last_heard, now)
        vehicle.address = address
        due = vehicle.last_report is None or (
            (now - vehicle.last_report).total_seconds() >= self._cfg.report_interval_s
        )
        if due:
            vehicle.last_report = now
            self._out.emit("parked_vehicle", fields, at=now, sensor=SENSOR, tags=vehicle.tags)

    def check_departures(self) -> None:
        """Report every vehicle not heard for ``stale_after_s`` as gone."""
        now = self._ctx.clock()
        for vehicle_id, vehicle in list(self.vehicles.items()):
            silent = (now - vehicle.last_heard).total_seconds()
            if silent < self._cfg.stale_after_s:
                continue
            del self.vehicles[vehicle_id]
            present = max(0.0, (vehicle.last_heard - vehicle.first_heard).total_seconds())
            log.info("vehicle_left", node=self._ctx.node, vehicle=vehicle_id, silent_s=silent)
            self._out.emit(
                "vehicle_left",
                {"present_s": present},
                at=vehicle.last_heard,
                sensor=SENSOR,
                tags=vehicle.tags,
            )

    async def _departures(self, stop: asyncio.Event) -> None:
        while not await wait_or_stop(stop, self.check_s):
            self.check_departures()

    async def _watch(self, stop: asyncio.Event) -> None:
        from hardware.ble import watch_advertisements

        radio = self._ctx.radio
        if radio is None:
            return
        await watch_advertisements(
            radio,
            self.on_advert,
            stop,
            manufacturer_id=self._cfg.manufacturer_id,
            backoff_min=self._backoff[0],
            backoff_max=self._backoff[1],
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Listen for vehicles until ``stop`` is set."""
        node = self._ctx.node
        loops = [supervise("station_departures", node, self._departures, stop)]
        if self._ctx.radio is None:
            log.error("station_without_radio", node=node)
        else:
            loops.append(supervise("station_scan", node, self._watch, stop))
        await asyncio.gather(*loops)

    def close(self) -> None:
        """Nothing to release (the scanner stops with ``run``); here for the agent contract."""
