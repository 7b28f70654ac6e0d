"""Hard limits of the wire contract v1, enforced by nodes before sending and by the cloud.

They are deliberately tight: a city's broker and store are shared by every trial, and one
misbehaving node must not be able to fill either. Change them only together with ``V``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

#: Node ids double as MQTT usernames and topic levels: lower-case, digits and '-'.
NODE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
#: MQTT user names of the cloud's services, which the broker ACL grants more than a node's own
#: subtree (``collector``, ``collector-1`` ...; ``consult`` ... for the consultation service).
#: Node ids are MQTT user names too, so no node may be named like one.
SERVICE_USER = re.compile(r"^(collector|consult)(-[a-z0-9-]*)?$")
#: Measurement names, tag keys and field keys.
KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
#: Stream ids are made by the node's outbox (a UUID4 in hex); others are accepted if they fit.
STREAM_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
#: Characters no tag value or string field may hold (C0/C1 controls and DEL).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

#: Measurements the cloud writes itself: ``link`` (one point per data message, what completeness
#: counts) and ``fleet_state`` (births, states, last seen) from cloud/collector/points.py, and the
#: daily rollups of ``link`` (cloud/rollup.py). A node that could write them could hide its own
#: gaps or fake another's presence.
RESERVED_MEASUREMENTS = frozenset({"link", "fleet_state", "rollup_link_day", "rollup_done"})
#: Tag keys the cloud sets itself: ``node``, ``trial``, ``site`` (from the fleet manifest) and
#: ``sensor`` on every reading, ``stream`` on ``link``, ``kind`` on ``fleet_state``; ``time`` is
#: InfluxDB's own. A reading may not claim them.
RESERVED_TAGS = frozenset({"node", "trial", "site", "sensor", "time", "kind", "stream"})
#: Field keys InfluxDB treats specially.
RESERVED_FIELDS = frozenset({"time"})

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """The numbers a message must stay within.

    >>> Limits().max_readings
    500
    """

    max_payload_bytes: int = 256 * 1024
    max_readings: int = 500
    max_tags: int = 16
    max_fields: int = 64
    max_tag_value: int = 128
    max_string_field: int = 256
    max_sensor: int = 64
    #: A reading may be this far in the future of the receiver's clock (node clocks drift).
    max_future_skew: timedelta = timedelta(minutes=5)
    #: ... and this far in its past (a node may have been offline for weeks).
    max_age: timedelta = timedelta(days=90)


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Budget:
    """What one node may create in the store over its whole life: distinct names and series.

    A store's index grows with every new measurement, tag value and series and never shrinks
    (InfluxDB 1.x caps series and values per tag for the whole database, so one node past them
    would stop every node), while a message stays small: one envelope within :class:`Limits`
    can carry 500 new series. The collector counts per node what it has stored and refuses a
    message that would go past the node's budget; the fleet manifest may set other numbers per
    node kind or node. Counted is what the node chooses: measurement names, its tag keys
    (``sensor`` counts as one), the values of each, and series (measurement, sensor and tags);
    the cloud's own tags and measurements are not.

    Sized so that a fleet of a few hundred nodes stays far below InfluxDB 1.x's defaults
    (1,000,000 series per database, 100,000 values per tag key):

    >>> Budget().series
    1024
    """

    measurements: int = 32
    tag_keys: int = 32
    #: Distinct values of each one tag key.
    tag_values: int = 256
    series: int = 1024


DEFAULT_BUDGET = Budget()
