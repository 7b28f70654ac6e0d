"""paho-mqtt's MQTT 5 properties, with their constant tables built once instead of per message.

paho 2.x decodes every MQTT 5 PUBLISH into a fresh :class:`paho.mqtt.properties.Properties`,
whose ``__init__`` builds three tables (names, types, which property fits which packet) and
whose ``unpack`` first walks every name to clear it. In the collector that was about a quarter
of the process's CPU at a few thousand messages a second, for messages that carry no properties
at all. :class:`LeanProperties` is the same class with those tables shared (paho only reads
them) and an early return for an empty property block; :func:`install` makes paho's PUBLISH
decoder use it. It changes nothing else: a message with properties is decoded by paho's own
code, into an object that is still a ``Properties``.

It is installed only on the paho versions it was checked against; on any other the collector
runs with paho as it is.

>>> LeanProperties(PacketTypes.PUBLISH).unpack(b"\\x00")[1]
1
"""

from __future__ import annotations

from typing import Any

import paho.mqtt
import structlog
from paho.mqtt import _packet
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = structlog.get_logger(__name__)

#: paho versions whose ``_packet.decode_publish`` and ``Properties`` this was checked against.
CHECKED_VERSIONS = frozenset({"2.1.0", "2.2.0"})

_TABLES = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
_CONSTANTS = frozenset({"packetType", "types", "names", "properties"})


class LeanProperties(Properties):
    """``Properties`` sharing paho's constant tables; decodes an empty block without work."""

    def __init__(self, packetType: int) -> None:
        object.__setattr__(self, "packetType", packetType)
        object.__setattr__(self, "types", _TABLES.types)
        object.__setattr__(self, "names", _TABLES.names)
        object.__setattr__(self, "properties", _TABLES.properties)

    def unpack(self, buffer: Any) -> tuple[Properties, int]:
        # A property length of 0 is one byte, and a fresh object has nothing to clear.
        if buffer[:1] == b"\x00" and vars(self).keys() <= _CONSTANTS:
            return self, 1
        result: tuple[Properties, int] = super().unpack(buffer)  # type: ignore[no-untyped-call]
        return result


def install() -> bool:
    """Make paho decode PUBLISH properties with :class:`LeanProperties`; False if not checked."""
    # The decoder looks the class up in its module's namespace on every PUBLISH.
    namespace = vars(_packet)
    if namespace.get("Properties") is LeanProperties:
        return True
    if (
        paho.mqtt.__version__ not in CHECKED_VERSIONS
        or namespace.get("Properties") is not Properties
    ):
        log.info("paho_properties_left_as_they_are", paho=paho.mqtt.__version__)
        return False
    namespace["Properties"] = LeanProperties
    return True
