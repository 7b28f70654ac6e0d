"""A stand-in for the cloud collector: takes data envelopes and answers with receipts.

Until the collector exists (and in tests of the node on its own), something must tell nodes
that their readings are stored, or their outboxes never empty. The stand-in validates each
envelope against the contract, remembers what it got, and publishes a receipt for it. It can
be told to lose receipts, to test that nodes send again. It speaks MQTT 5 by default and
3.1.1 with ``protocol="3.1.1"`` (for a broker such as the demo's amqtt that has no MQTT 5).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol import InvalidMessage, InvalidTopic, Receipt, Topics, parse_envelope

log = structlog.get_logger(__name__)


@dataclass
class StreamTally:
    """What the stand-in received from one stream of one node."""

    seqs: set[int] = field(default_factory=set)
    readings: int = 0
    duplicates: int = 0
    synthetic_ns: set[int] = field(default_factory=set)


class ReceiptStandin:
    """Subscribes to every node's data and receipts each envelope.

    >>> # with ReceiptStandin("127.0.0.1", port) as cloud:
    >>> #     cloud.wait_until(lambda: cloud.readings >= 100, timeout=30)
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        prefix: str = "machikado",
        username: str | None = None,
        password: str | None = None,
        lose_receipts: int = 0,
        client_id: str = "machikado-standin",
        protocol: Literal["5", "3.1.1"] = "5",
    ) -> None:
        if protocol not in ("5", "3.1.1"):
            raise ValueError(f"stand-in protocol {protocol!r} is not '5' or '3.1.1'")
        self.protocol = protocol
        self.topics = Topics(prefix)
        self.host, self.port = host, port
        self.lose_receipts = lose_receipts
        self.tally: dict[tuple[str, str], StreamTally] = defaultdict(StreamTally)
        self.invalid: list[tuple[str, list[str]]] = []
        self.receipts_sent = 0
        self.receipts_lost = 0
        self._cond = threading.Condition()
        v5 = protocol == "5"
        # 3.1.1 has no session expiry; clean_session=False keeps the session as MQTT 5's
        # SessionExpiryInterval does in start().
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else False,
        )
        if username:
            self._client.username_pw_set(username, password)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(min_delay=1, max_delay=2)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *_a: self._subscribed.set()

    def __enter__(self) -> ReceiptStandin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 10.0) -> None:
        # A persistent session, as the real collector has: what nodes send while the stand-in
        # is cut off from the broker waits there for it instead of waiting for a resend.
        if self.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 3600
            self._client.connect_async(
                self.host, self.port, keepalive=10, clean_start=False, properties=props
            )
        else:
            self._client.connect_async(self.host, self.port, keepalive=10)
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise TimeoutError(f"stand-in could not subscribe at {self.host}:{self.port}")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    # ------------------------------------------------------------------ queries
    @property
    def readings(self) -> int:
        with self._cond:
            return sum(t.readings for t in self.tally.values())

    def seqs(self, node: str, stream: str) -> set[int]:
        with self._cond:
            return set(self.tally[(node, stream)].seqs)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` holds (checked on every message) or the timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    # ---------------------------------------------------------------- callbacks
    def _on_connect(self, client: mqtt.Client, *_a: Any) -> None:
        client.subscribe(self.topics.every("data"), qos=1)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            node = self.topics.parse(msg.topic).node
            env = parse_envelope(bytes(msg.payload), topic_node=node)
        except (InvalidTopic, InvalidMessage) as exc:
            reasons = list(getattr(exc, "reasons", [str(exc)]))
            log.warning("standin_invalid_message", topic=msg.topic, reasons=reasons)
            with self._cond:
                self.invalid.append((msg.topic, reasons))
                self._cond.notify_all()
            return
        with self._cond:
            tally = self.tally[(env.node, env.stream)]
            if env.seq in tally.seqs:
                tally.duplicates += 1
            else:
                tally.seqs.add(env.seq)
                tally.readings += len(env.readings)
                for r in env.readings:
                    n = r.fields.get("n")
                    if r.m == "synthetic" and isinstance(n, int):
                        tally.synthetic_ns.add(n)
            lose = self.receipts_lost < self.lose_receipts
            if lose:
                self.receipts_lost += 1
            else:
                self.receipts_sent += 1
            self._cond.notify_all()
        if lose:
            log.info("standin_receipt_lost", node=env.node, stream=env.stream, seq=env.seq)
            return
        receipt = Receipt.of(env.stream, [env.seq])
        client.publish(self.topics.receipt(env.node), receipt.model_dump_json(), qos=1)
