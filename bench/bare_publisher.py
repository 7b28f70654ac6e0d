"""A bare paho-mqtt publisher: one small JSON reading at QoS 1 every 1/rate s, until SIGTERM.

The reference for the agent benchmark: what publishing at 10 readings/s costs with nothing but
paho-mqtt, no outbox, no validation, no agents. Run as its own process::

    python -m bench.bare_publisher --host 127.0.0.1 --port 1883 --rate 10
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

TOPIC = "bench/agent/reference"


def main(argv: list[str] | None = None) -> None:
    """Connect, then publish on a fixed schedule until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_publisher")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=10.0, help="readings per second")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    connected = threading.Event()

    def on_connect(*_a: Any) -> None:
        connected.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.on_connect = on_connect
    client.connect(args.host, args.port, keepalive=30)
    client.loop_start()
    if not connected.wait(10.0):
        raise SystemExit(f"bare publisher: no CONNACK from {args.host}:{args.port}")
    start, n = time.monotonic(), 0
    while not stop.is_set():
        n += 1
        reading = {
            "m": "synthetic",
            "at": datetime.now(UTC).isoformat(),
            "sensor": "synthetic",
            "fields": {"n": n, "value": math.sin(n / 10.0)},
        }
        client.publish(TOPIC, json.dumps(reading), qos=1)
        stop.wait(max(0.0, start + n / args.rate - time.monotonic()))
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main()
