"""A data envelope's line protocol straight from its JSON, checked in the same pass.

The collector's usual message is a plainly valid envelope from a known node whose readings
repeat the same few shapes (measurement, sensor, tags, field names). :class:`LineWriter` takes
such a message from its JSON to the line protocol that
``envelope_lines(parse_envelope_lean(...))`` writes for it, in one pass over the readings: what
is the same from reading to reading (the series key, the order of the fields) is checked once
per shape, by the contract's own checks (:data:`protocol.codec.reading_parts`,
:data:`~protocol.codec.fields_ok`), and kept; what differs (the time, each value) is checked
for every reading. Anything else (a bad value, a time outside the window, a new shape that fails
its checks or its node's budget, a type it does not expect) answers None, and the message goes
the full way, which decides it and names every reason. tests/cloud/test_collector_lines.py
holds the two to each other on generated messages.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from math import isfinite
from typing import Any, NamedTuple

from pydantic_core import from_json

from cloud.collector.budget import Shape
from cloud.collector.points import link_line, link_point, reading_series
from cloud.fleet import Assignment
from cloud.store import lineprotocol
from cloud.store.lineprotocol import MAX_KEY_BYTES, STRING_ESCAPES
from protocol.codec import READING_KEYS, envelope_head, fields_ok, reading_parts, time_us_of
from protocol.limits import CONTROL, DEFAULT_LIMITS, INT64_MAX, INT64_MIN, Limits

#: Whether a node (first) may add the series of these shapes (measurement, sensor, tag items
#: in the reading's order), counting them if so: the collector's budgets.
Admit = Callable[[str, list[Shape]], bool]
#: Shapes and field orders kept per writer; past this many, new ones are not remembered (a
#: stream of distinct hostile names only makes the writer slower, never bigger).
_ROOM = 16_384


class DataLines(NamedTuple):
    """What the line path made of a data envelope."""

    stream: str
    seq: int
    #: The line protocol of its readings and its ``link`` point, each line ending in ``\\n``.
    lines: bytes
    #: How many lines (points) that is.
    points: int


class LineWriter:
    """Writes plainly valid data envelopes as line protocol; one per collector (its caches).

    >>> from datetime import UTC, datetime
    >>> from protocol.codec import EXAMPLE, time_us
    >>> now = time_us(datetime(2026, 11, 26, 7, 0, 2, tzinfo=UTC))
    >>> out = LineWriter().lines(EXAMPLE, "rr-01", Assignment("t", "s", "restroom"), now, now)
    >>> out.lines.decode().splitlines()[0]
    'visit,node=rr-01,site=s,trial=t n=1i 1795676400000000000'
    """

    def __init__(self, limits: Limits | None = None, admit: Admit | None = None) -> None:
        self.limits = limits or DEFAULT_LIMITS
        #: Asked once per message with the shapes new to the writer for that node (None: no
        #: budgets): True counts them and lets the message through, False declines it.
        self._admit = admit
        self._future_us = self.limits.max_future_skew // _US
        self._age_us = self.limits.max_age // _US
        #: (node, trial, site) -> (m, sensor, tag items) -> the series key and its UTF-8 length.
        self._series: dict[tuple[str, str, str], dict[tuple[Any, ...], tuple[str, int]]] = {}
        self._series_kept = 0
        #: field names in the reading's order -> (name, escaped name) in line order, longest.
        self._fields: dict[tuple[str, ...], tuple[tuple[tuple[str, str], ...], int]] = {}

    def lines(
        self, payload: bytes, node: str, where: Assignment, now_us: int, received_us: int
    ) -> DataLines | None:
        """The envelope's lines when ``payload`` is plainly valid from ``node`` (the topic's)
        at ``now_us``, else None. Times in microseconds since the epoch."""
        if len(payload) > self.limits.max_payload_bytes:
            return None
        try:
            return self._lines(payload, node, where, now_us, received_us)
        except TypeError:  # an unhashable name, sensor or tag value: the full way decides
            return None

    def _lines(
        self, payload: bytes, node: str, where: Assignment, now_us: int, received_us: int
    ) -> DataLines | None:
        try:
            data = from_json(payload, cache_strings=False)  # as protocol.codec.envelope_lean
        except ValueError:
            return None
        head = envelope_head(data, time_us_of)
        if head is None:
            return None
        _v, payload_node, stream, seq, sent_at_us, raw = head
        newest, oldest = now_us + self._future_us, now_us - self._age_us
        if payload_node != node or sent_at_us > newest:
            return None
        if not (oldest >= _MIN_US and newest <= _MAX_US):
            return None  # limits so wide a time could leave InfluxDB's range: the full way
        trial, site = where.trial, where.site
        series_of = self._series.get((node, trial, site))
        if series_of is None:
            series_of = {}
            if self._series_kept < _ROOM:
                self._series[(node, trial, site)] = series_of
                self._series_kept += 1
        fields_of = self._fields
        # Shapes this message shows first: learnt only once its budget admits them, so a shape
        # the writer knows is one its node's budget holds already (and costs nothing more).
        fresh: dict[tuple[Any, ...], tuple[str, int]] | None = None
        out: list[str] = []
        for item in raw:
            if type(item) is not dict:
                return None
            get = item.get
            m, sensor, tags = get("m"), get("sensor"), get("tags")
            if tags:
                if type(tags) is not dict:
                    return None
                tag_items: tuple[tuple[Any, Any], ...] = tuple(tags.items())
            elif type(tags) is dict or (tags is None and "tags" not in item):
                tag_items = ()
            else:
                return None  # "tags": null, or another empty value: the models decide
            shape = (m, sensor, tag_items)
            series = series_of.get(shape)
            if series is None:
                series = fresh.get(shape) if fresh is not None else None
            if series is None:
                if reading_parts(item, time_us_of) is None:
                    return None
                series = reading_series(m, node, trial, site, sensor, tag_items)
                if series is None:
                    return None
                if fresh is None:
                    fresh = {}
                fresh[shape] = series
            if not item.keys() <= READING_KEYS:
                return None
            at_us = time_us_of(get("at"))
            if at_us is None or not oldest <= at_us <= newest:
                return None
            fields = get("fields")
            if type(fields) is not dict:
                return None
            names = tuple(fields)
            order = fields_of.get(names)
            if order is None:
                if not fields_ok(fields):
                    return None
                order = lineprotocol.field_order(names)
                if order is None:
                    return None
                if len(fields_of) < _ROOM:
                    fields_of[names] = order
            # The checks of fields_ok and of lineprotocol.fast_line, per value (inline: this
            # runs for every reading).
            pairs, longest = order
            if series[1] + longest > MAX_KEY_BYTES:
                return None
            texts = []
            for key, escaped in pairs:
                value = fields[key]
                kind = type(value)
                if kind is float:
                    if not isfinite(value):
                        return None
                    texts.append(f"{escaped}={value!r}")
                elif kind is int:
                    if not INT64_MIN <= value <= INT64_MAX:
                        return None
                    texts.append(f"{escaped}={value}i")
                elif kind is bool:
                    texts.append(f"{escaped}=true" if value else f"{escaped}=false")
                elif kind is str:
                    if len(value) > _MAX_STRING or (
                        not value.isprintable() and CONTROL.search(value)
                    ):
                        return None
                    texts.append(f'{escaped}="{value.translate(STRING_ESCAPES)}"')
                else:
                    return None
            out.append(f"{series[0]} {','.join(texts)} {at_us * 1000}")
        link = link_line(link_point(node, stream, seq, sent_at_us, len(raw), received_us))
        if link is None:
            return None
        out.append(link)
        out.append("")
        try:
            lines = DataLines(stream, seq, "\n".join(out).encode("utf-8"), len(out) - 1)
        except UnicodeEncodeError:  # a lone surrogate in a string field: the full way names it
            return None
        if fresh is not None:
            if self._admit is not None and not self._admit(node, list(fresh)):
                return None  # over the node's budget: the full way says which and why
            for shape, series in fresh.items():
                if self._series_kept < _ROOM:
                    series_of[shape] = series
                    self._series_kept += 1
        return lines


_US = timedelta(microseconds=1)
#: The contract's own bound (the codec's checks use the default limits for a reading's shape).
_MAX_STRING = DEFAULT_LIMITS.max_string_field
#: InfluxDB's time range in µs: a window inside it needs no check per reading.
_MIN_US = -(lineprotocol.MIN_TIME_NS // -1000)
_MAX_US = lineprotocol.MAX_TIME_NS // 1000
