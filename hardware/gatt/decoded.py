"""The one shape every GATT decoder returns: a reading with its fields, units and time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

FieldValue = float | int | bool | str


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded characteristic value (or advertisement), ready to become a ``Reading``.

    Field keys are valid ``protocol.limits.KEY`` names that carry their unit (``weight_kg``);
    ``units`` names the unit of each field that has one. ``at`` is when the device says it
    measured, or ``None`` when the payload carries no (known) time.

    >>> d = Decoded("battery_level", 0x2A19, {"battery_pct": 87}, {"battery_pct": "%"})
    >>> d.to_json()["uuid"]
    '0x2A19'
    """

    characteristic: str
    uuid: int
    fields: dict[str, FieldValue] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    at: datetime | None = None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict: uuid as ``0x2A1C``, time as ISO 8601 with its offset."""
        return {
            "characteristic": self.characteristic,
            "uuid": f"0x{self.uuid:04X}",
            "at": self.at.isoformat() if self.at is not None else None,
            "fields": dict(self.fields),
            "units": dict(self.units),
        }
