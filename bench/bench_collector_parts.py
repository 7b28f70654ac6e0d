"""The collector's per-message work, part by part, in one process: each fast path beside the
path it replaced.

For one data envelope of 10 readings (the benchmark's large size):

- **parse**: ``parse_envelope_lean`` (what the collector runs: the fast path's checks, plain
  values) beside validating through the models (``Envelope.model_validate_json``, one Python
  call per tag and field value), and ``protocol.parse_envelope`` (the fast path into models);
- **lines**: ``envelope_lines``, the line protocol of the 11 points the collector writes for it,
  straight from the lean values, beside ``envelope_points`` + ``encode_points``;
- **line protocol**: ``encode_points`` per point (fast path) beside the full per-point checks;
- **MQTT 5 PUBLISH decode**: paho's ``decode_publish`` with the collector's lean properties
  beside paho's own.

Best of several repeats, microseconds. No broker or store: run with
``python -m bench.bench_collector_parts``.
"""

from __future__ import annotations

import math
import struct
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.properties import Properties

from bench.common import Row
from cloud.collector import lean_properties
from cloud.collector.points import envelope_lines, envelope_points
from cloud.fleet import Assignment
from cloud.store import lineprotocol
from protocol import Envelope, Reading, encode_envelope, encode_readings, parse_envelope
from protocol.codec import parse_envelope_lean, time_us

READINGS = 10
REPEATS = 5


def best_us(fn: Callable[[], object], number: int) -> float:
    """The best of :data:`REPEATS` timings of ``number`` calls, per call, in microseconds."""
    return min(timeit.repeat(fn, number=number, repeat=REPEATS)) / number * 1e6


def envelope(now: datetime, readings: int = READINGS) -> bytes:
    """A data envelope like the benchmark's: ``readings`` synthetic readings, 1 µs apart."""
    rs = [
        Reading(
            m="bench_r10",
            at=now + timedelta(microseconds=n),
            sensor="synthetic",
            fields={"n": n, "value": math.sin(n / 10.0)},
        )
        for n in range(readings)
    ]
    return encode_envelope(
        node="bench-01",
        stream="0123456789abcdef0123456789abcdef",
        seq=1,
        sent_at=now,
        readings_json=encode_readings(rs),
    )


def _publish_packet(payload: bytes) -> bytes:
    topic = b"machikado/v1/bench-01/data"
    return struct.pack("!H", len(topic)) + topic + struct.pack("!H", 1) + b"\x00" + payload


def _decode_us(packet: bytes, properties: type[Properties], number: int) -> float:
    namespace = vars(_packet)
    before = namespace["Properties"]
    namespace["Properties"] = properties
    try:
        return best_us(
            lambda: _packet.decode_publish(0x32, packet, MQTTProtocolVersion.MQTTv5), number
        )
    finally:
        namespace["Properties"] = before


def run(scale: float = 1.0) -> list[Row]:
    """Time each part; one row per part, ours (the fast path) beside what it replaced.

    ``scale`` multiplies how many calls each timing makes (tests run it small).
    """
    calls = max(1, round(2_000 * scale))
    batches = max(1, round(20 * scale))
    decodes = max(1, round(20_000 * scale))
    now = datetime.now(UTC)
    payload = envelope(now)
    where = Assignment(trial="bench", site="bench-site", kind="restroom")
    env = parse_envelope(payload, topic_node="bench-01", now=now)
    lean = parse_envelope_lean(payload, topic_node="bench-01", now=now)
    now_us = time_us(now)
    points = envelope_points(env, where=where, received_at=now) * 100
    label = f"per envelope of {READINGS} readings"
    return [
        Row(
            name=f"parse + validate, µs {label}",
            ours=best_us(
                lambda: parse_envelope_lean(payload, topic_node="bench-01", now=now), calls
            ),
            unit="µs",
            reference=best_us(lambda: Envelope.model_validate_json(payload), calls),
            reference_label="through the models (a Python call per tag and field value)",
            higher_is_better=False,
            target="<= 30 µs",
        ),
        Row(
            name=f"parse + validate into models (fast path), µs {label}",
            ours=best_us(lambda: parse_envelope(payload, topic_node="bench-01", now=now), calls),
            unit="µs",
            higher_is_better=False,
        ),
        Row(
            name=f"line protocol of its points, µs {label}",
            ours=best_us(lambda: envelope_lines(lean, where, now_us), calls),
            unit="µs",
            reference=best_us(
                lambda: lineprotocol.encode_points(
                    envelope_points(env, where=where, received_at=now)
                ),
                calls,
            ),
            reference_label="points made from the models, then encoded",
            higher_is_better=False,
        ),
        Row(
            name="line protocol, µs per point",
            ours=best_us(lambda: lineprotocol.encode_points(points), batches) / len(points),
            unit="µs",
            reference=best_us(lambda: lineprotocol._checked_lines(points), batches) / len(points),
            reference_label="every check on every point (the path for points it cannot vouch for)",
            higher_is_better=False,
            target="<= 5 µs",
        ),
        Row(
            name="MQTT 5 PUBLISH decode, µs per message",
            ours=_decode_us(_publish_packet(payload), lean_properties.LeanProperties, decodes),
            unit="µs",
            reference=_decode_us(_publish_packet(payload), Properties, decodes),
            reference_label="paho's Properties, built per message",
            higher_is_better=False,
        ),
    ]


def main() -> int:
    from rich.console import Console

    from bench.__main__ import render

    Console().print(render(run(), title="machikado collector parts"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
