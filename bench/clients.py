"""paho clients for the benchmarks' load generators and references, and a callback counter.

>>> c = Counter(); c.add(); c.count
1
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.errors import BenchError


class Counter:
    """Counts events from paho's network threads; the caller waits for a number of them."""

    def __init__(self) -> None:
        self.count = 0
        self.cond = threading.Condition()

    def add(self, *_a: Any) -> None:
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float, what: str) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.count >= n, timeout):
                raise BenchError(f"{what}: {self.count} of {n} within {timeout:g} s")


def connect(
    host: str, port: int, role: str, *, inflight: int = 20, clean: bool = True
) -> mqtt.Client:
    """A connected MQTT 5 paho client running its network loop in a thread."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-{role}-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)  # 0: paho queues what is not yet in flight, unbounded
    connected = Counter()
    client.on_connect = connected.add
    client.connect(host, port, keepalive=30, clean_start=clean)
    client.loop_start()
    connected.wait_for(1, 10.0, f"{role} connected to {host}:{port}")
    return client


def disconnect(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()
