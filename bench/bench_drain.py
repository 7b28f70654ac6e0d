"""Backlog drain rate: a node's outbox, filled while the broker was down, emptied to Mosquitto.

A real node process (``python -m machikado.cli edge run``) makes ``readings`` synthetic readings
while its broker is down, so they all wait in its outbox. Then the broker starts, and the clock
runs from just before the broker starts until the outbox is empty: every seq receipted by the
stand-in cloud. The node paces a backlog at its default ``mqtt.backlog_rate`` (5,000 readings/s).

The reference is a bare paho-mqtt QoS 1 publisher sending the same readings in envelopes of the
same size (100 readings) to the same broker, 32 in flight, to one QoS 1 subscriber: the ceiling
of the broker on this machine. It gets no receipts; the node waits for one per envelope (the
cloud's round trip) before a reading counts as drained. Run alone with
``python -m bench.bench_drain``.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from bench.clients import Counter, connect, disconnect
from bench.common import Row
from bench.errors import BenchError
from bench.harness import Report, ignore, quiet_logs, service_dir, write_node_config
from edge.outbox import OutboxStats
from edge.standin import ReceiptStandin
from protocol import Reading, encode_envelope, encode_readings
from tests.integration.nodes import NodeProcess, wait_for
from tests.services import MosquittoServer

#: Readings the node makes offline; at 5,000/s the drain takes a few seconds.
READINGS = 20_000
#: How fast the node makes them while offline (readings/s): a backlog, not a live load.
OFFLINE_RATE = 10_000.0
#: The node's defaults that the reference copies.
READINGS_PER_ENVELOPE = 100
MAX_INFLIGHT = 32
#: Quick reconnects: the default backoff grows to 60 s while the broker is down, which would
#: measure the backoff, not the drain.
RECONNECT = "reconnect_min_s = 0.1\nreconnect_max_s = 0.25"
#: The ReceiptStandin's default client id; its persistent session survives the broker restart.
STANDIN_ID = "machikado-standin"
NODE = "bench-drain"
REFERENCE_TOPIC = "bench/drain/reference"


def _timeout(readings: int) -> float:
    # Generous: at 100 readings/s even a very slow machine finishes.
    return 60.0 + readings / 100


def node_drain(
    broker: MosquittoServer, directory: Path, *, readings: int, report: Report
) -> tuple[float, int, float, str]:
    """Drain a backlog of ``readings`` made offline; return (rate, held, backlog_rate, stream).

    ``broker`` has been started once (so its port is fixed) and is stopped here first.
    """
    # A persistent stand-in session, made now and kept by the broker across its restart, holds
    # every envelope the node sends before the second stand-in has connected.
    with ReceiptStandin(broker.host, broker.port, client_id=STANDIN_ID):
        pass
    broker.stop()
    config = write_node_config(
        directory,
        node=NODE,
        port=broker.port,
        synthetic_rate=OFFLINE_RATE,
        synthetic_count=readings,
        mqtt=RECONNECT,
        sections="[health]\ninterval_s = 3600",
    )
    node = NodeProcess(config)
    cloud: ReceiptStandin | None = None
    try:
        report(f"node making {readings:,} readings offline")
        node.start()
        wait_for(
            f"{readings} readings held offline",
            lambda: _alive(node).produced >= readings,
            _timeout(readings),
        )
        held = node.stats().pending_readings
        report(f"draining {held:,} readings")
        start = time.perf_counter()
        broker.start()
        cloud = ReceiptStandin(broker.host, broker.port, client_id=STANDIN_ID)
        cloud.start()
        wait_for("the outbox drained", lambda: _alive(node).pending_rows == 0, _timeout(held))
        elapsed = time.perf_counter() - start
        stream = node.stats().stream
        if cloud.readings < held:
            raise BenchError(
                f"the outbox emptied but the stand-in counted {cloud.readings} of {held} readings"
            )
    except AssertionError as exc:
        raise BenchError(f"drain: {exc}\n--- node log ---\n{node.log_tail()}") from None
    finally:
        if node.alive():
            node.terminate()
        if cloud is not None:
            cloud.stop()
    return held / elapsed, held, node.cfg.mqtt.backlog_rate, stream


def _alive(node: NodeProcess) -> OutboxStats:
    node.assert_alive()
    return node.stats()


def envelopes(
    readings: int, *, stream: str, per_envelope: int = READINGS_PER_ENVELOPE
) -> list[bytes]:
    """``readings`` synthetic readings as data envelopes, shaped as the node sends them."""
    at = datetime.now(UTC)
    out: list[bytes] = []
    for seq, first in enumerate(range(1, readings + 1, per_envelope), start=1):
        batch = [
            Reading(
                m="synthetic",
                at=at,
                sensor="synthetic",
                fields={"n": n, "value": math.sin(n / 10.0)},
            )
            for n in range(first, min(first + per_envelope, readings + 1))
        ]
        out.append(
            encode_envelope(
                node=NODE,
                stream=stream,
                seq=seq,
                sent_at=at,
                readings_json=encode_readings(batch),
            )
        )
    return out


def bare_publisher(broker: MosquittoServer, *, readings: int, stream: str) -> float:
    """Readings per second a bare QoS 1 publisher gets through the broker to a subscriber."""
    payloads = envelopes(readings, stream=stream)
    subscriber = connect(broker.host, broker.port, "subscriber")
    publisher: mqtt.Client | None = None
    try:
        subscribed, delivered = Counter(), Counter()
        subscriber.on_subscribe = subscribed.add
        subscriber.on_message = delivered.add
        subscriber.subscribe(REFERENCE_TOPIC, qos=1)
        subscribed.wait_for(1, 10.0, "reference: subscribed")
        publisher = connect(broker.host, broker.port, "publisher", inflight=MAX_INFLIGHT)
        acked = Counter()
        publisher.on_publish = acked.add
        timeout = _timeout(readings)
        start = time.perf_counter()
        for payload in payloads:
            info = publisher.publish(REFERENCE_TOPIC, payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise BenchError(f"reference: publish not queued: {mqtt.error_string(info.rc)}")
        acked.wait_for(len(payloads), timeout, "reference: PUBACKs")
        delivered.wait_for(len(payloads), timeout, "reference: envelopes delivered")
        elapsed = time.perf_counter() - start
    finally:
        for client in (publisher, subscriber):
            if client is not None:
                disconnect(client)
    return readings / elapsed


def run(readings: int = READINGS, *, report: Report = ignore) -> list[Row]:
    """Measure the node's backlog drain and the bare publisher's rate at ``readings``."""
    with quiet_logs(), service_dir("bench-drain-") as tmp:
        broker = MosquittoServer(tmp / "mosquitto")
        report("starting Mosquitto")
        broker.start()
        try:
            ours, held, backlog_rate, stream = node_drain(
                broker, tmp / "node", readings=readings, report=report
            )
            report("bare paho publisher")
            reference = bare_publisher(broker, readings=held, stream=stream)
        finally:
            broker.stop()
    return [
        Row(
            name=f"backlog drain to Mosquitto ({held:,} readings)",
            ours=ours,
            unit="readings/s",
            reference=reference,
            reference_label=(
                f"bare paho QoS 1 publisher, {READINGS_PER_ENVELOPE} readings/envelope, "
                f"{MAX_INFLIGHT} in flight, no receipts"
            ),
            higher_is_better=True,
            target=f">= 2,000/s (node paces a backlog at {backlog_rate:,.0f}/s)",
        )
    ]


def main() -> None:
    """Run the benchmark and print its rows."""
    from rich.console import Console

    from bench.__main__ import render

    Console().print(render(run()))


if __name__ == "__main__":
    main()
