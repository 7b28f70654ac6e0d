"""The collector: MQTT in, batched durable writes out, ack and receipt only after the write.

Two threads. paho's network thread receives (``loop_start``) and only queues each message; the
collector's own thread (the caller of :meth:`Collector.run`) checks messages, batches them,
writes each batch, then acks every message of it to the broker in the order they came and sends
each node a receipt per stream. Nothing is acked that is not in the store or the dead-letter
store, so a crash at any point loses nothing: the broker keeps the unacked messages in the
persistent session and delivers them again, and the store writes them idempotently.

The broker never has more than ``max_inflight`` unacked messages out to us (MQTT 5 Receive
Maximum, sent in CONNECT), which bounds what the collector holds: backpressure, not memory.
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud.collector.batch import Abandoned, Batch, BatchWriter, Message, Written
from cloud.collector.intake import Intake
from cloud.collector.settings import BatchSection, MqttSection, RetrySection
from cloud.deadletter import DeadLetters
from cloud.store.base import Store
from protocol import Receipt

log = structlog.get_logger(__name__)

#: How long shutdown waits for the broker to confirm the last receipts.
_RECEIPT_WAIT_S = 5.0


@dataclass
class Counters:
    """What the collector has done since it started (for the summary log and tests)."""

    received: int = 0
    stored: int = 0
    points: int = 0
    dead_letters: int = 0
    ignored: int = 0
    batches: int = 0
    store_retries: int = 0
    acked: int = 0
    not_acked_stale: int = 0
    receipts: int = 0
    connects: int = 0


class Collector:
    """One collector process's work: subscribe, check, batch, write, ack, receipt.

    >>> # collector = Collector(mqtt=cfg.mqtt, batch=cfg.batch, retry=cfg.retry, store=store,
    >>> #                       dead_letters=dl, intake=Intake(cfg.mqtt.topics, fleet))
    >>> # stop = threading.Event(); collector.run(stop)   # returns after stop is set, drained
    """

    def __init__(
        self,
        *,
        mqtt: MqttSection,
        batch: BatchSection,
        retry: RetrySection,
        store: Store,
        dead_letters: DeadLetters,
        intake: Intake,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.mqtt_cfg = mqtt
        self.batch_cfg = batch
        self.intake = intake
        self.clock = clock
        self.counters = Counters()
        self.give_up = threading.Event()
        self.writer = BatchWriter(
            store,
            dead_letters,
            initial_s=retry.initial_s,
            max_s=retry.max_s,
            give_up=self.give_up,
            on_retry=self._count_retry,
        )
        # (message, number of the connection it came on)
        self._inbox: queue.Queue[tuple[paho.MQTTMessage, int]] = queue.Queue()
        self._receipts: list[paho.MQTTMessageInfo] = []
        self._last_counts = (0, 0)
        self._session = 0
        self._taking = True
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self._pending_subs: set[int] = set()
        self._client = self._new_client()
        self._log = log.bind(client_id=mqtt.client_id)

    # -- public -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Collect until ``stop`` is set; then stop taking messages, write and ack what is held.

        If the store stays down past ``drain_timeout_s`` after ``stop``, what is held is left
        unacked: the broker keeps it for the next collector.
        """
        self._connect()
        finished = threading.Event()
        watcher = threading.Thread(
            target=self._give_up_after_stop, args=(stop, finished), daemon=True
        )
        watcher.start()
        batch = Batch()
        last_summary = time.monotonic()
        try:
            while not stop.is_set():
                batch = self._fill(batch, stop)
                if batch and not stop.is_set():
                    self._flush(batch)
                    batch = Batch()
                now = time.monotonic()
                if now - last_summary >= self.batch_cfg.summary_interval_s:
                    self._summary(now - last_summary)
                    last_summary = now
            self._drain(batch)
        except Abandoned as exc:
            self._log.warning("drain_abandoned", reason=str(exc), note="left unacked")
        finally:
            finished.set()
            self._client.disconnect()
            self._client.loop_stop()
            self._log.info("collector_stopped", **vars(self.counters))

    def _give_up_after_stop(self, stop: threading.Event, finished: threading.Event) -> None:
        while not stop.wait(0.2):
            if finished.is_set():
                return
        if not finished.wait(self.batch_cfg.drain_timeout_s):
            self.give_up.set()

    # -- paho (network thread) ----------------------------------------------------------------

    def _new_client(self) -> paho.Client:
        cfg = self.mqtt_cfg
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.secret() or None)
        if cfg.tls:
            client.tls_set(
                ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        low = max(1, round(cfg.reconnect_min_s))
        client.reconnect_delay_set(min_delay=low, max_delay=max(low, round(cfg.reconnect_max_s)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _connect(self) -> None:
        cfg = self.mqtt_cfg
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = cfg.session_expiry_s
        props.ReceiveMaximum = cfg.max_inflight
        self._client.connect_async(
            cfg.host, cfg.port, keepalive=cfg.keepalive_s, clean_start=False, properties=props
        )
        self._client.loop_start()

    def _on_connect(
        self, client: paho.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Any
    ) -> None:
        if rc.is_failure:
            self._log.error("mqtt_connect_refused", host=self.mqtt_cfg.host, reason=str(rc))
            return
        with self._lock:
            self._session += 1
            self.counters.connects += 1
        self._log.info(
            "mqtt_connected",
            host=self.mqtt_cfg.host,
            port=self.mqtt_cfg.port,
            session_present=bool(getattr(flags, "session_present", False)),
        )
        # Subscribing on every connect restores the subscriptions if the broker lost the
        # session (expired, or a broker without persistence).
        err, mid = client.subscribe([(t, 1) for t in self.mqtt_cfg.subscriptions()])
        if err == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
            with self._lock:
                self._pending_subs.add(mid)

    def _on_subscribe(
        self, _c: paho.Client, _u: Any, mid: int, rcs: list[ReasonCode], _p: Any
    ) -> None:
        bad = [str(rc) for rc in rcs if rc.is_failure]
        if bad:
            self._log.error("mqtt_subscribe_refused", reasons=bad)
        with self._lock:
            self._pending_subs.discard(mid)
        self.subscribed.set()

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            self._log.warning("mqtt_disconnected", reason=str(rc))

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        # Once stopping, a message is neither processed nor acked: the broker keeps it in the
        # session for the next collector.
        if self._taking:
            self._inbox.put((msg, self._session))

    # -- the collector's thread ---------------------------------------------------------------

    def _fill(self, batch: Batch, stop: threading.Event) -> Batch:
        """Take messages until the batch is due, the inbox goes idle, or ``stop`` is set."""
        cfg = self.batch_cfg
        while not stop.is_set():
            # An empty batch waits a while (so stop and the summary are seen); an open one
            # waits for the next message at most idle_ms, and never past its max_delay_ms.
            timeout = 0.25
            if batch:
                left = batch.opened_at + cfg.max_delay_ms / 1000 - time.monotonic()
                timeout = max(0.0, min(cfg.idle_ms / 1000, left))
            try:
                msg, session = self._inbox.get(timeout=timeout)
            except queue.Empty:
                return batch
            self._take(msg, session, batch)
            if self._full(batch):
                return batch
        return batch

    def _take(self, msg: paho.MQTTMessage, session: int, batch: Batch) -> None:
        received_at = self.clock()
        payload = bytes(msg.payload)
        outcome = self.intake(msg.topic, payload, received_at)
        self.counters.received += 1
        batch.add(
            Message(
                topic=msg.topic,
                payload=payload,
                received_at=received_at,
                outcome=outcome,
                mid=msg.mid,
                qos=msg.qos,
                session=session,
            ),
            time.monotonic(),
        )

    def _full(self, batch: Batch) -> bool:
        # At max_inflight held messages the broker sends no more until we ack: write now.
        return batch.points >= self.batch_cfg.max_points or len(batch) >= self.mqtt_cfg.max_inflight

    def _flush(self, batch: Batch) -> None:
        written = self.writer.write(batch)
        self._settle(batch, written)

    def _settle(self, batch: Batch, written: Written) -> None:
        with self._lock:
            session = self._session
        c = self.counters
        c.batches += 1
        c.stored += written.stored
        c.points += written.points
        c.dead_letters += written.dead_lettered
        c.ignored += written.ignored
        for msg in batch.messages:
            if msg.qos == 0:
                continue
            if msg.session != session:
                c.not_acked_stale += 1
                continue
            self._client.ack(msg.mid, msg.qos)
            c.acked += 1
        self._receipts = self._send_receipts(written)

    def _send_receipts(self, written: Written) -> list[paho.MQTTMessageInfo]:
        sent = []
        for (node, stream), seqs in written.seqs.items():
            receipt = Receipt.of(stream, seqs)
            info = self._client.publish(
                self.mqtt_cfg.topics.receipt(node), receipt.model_dump_json(), qos=1
            )
            sent.append(info)
            self.counters.receipts += 1
            self._log.debug("receipt_sent", node=node, stream=stream, ranges=receipt.ranges)
        return sent

    def _drain(self, batch: Batch) -> None:
        """Stop taking messages; write, ack and receipt what was taken before the stop."""
        self._taking = False
        self._log.info("collector_draining", held=len(batch) + self._inbox.qsize())
        while True:
            try:
                msg, session = self._inbox.get_nowait()
            except queue.Empty:
                break
            self._take(msg, session, batch)
        if batch:
            self._flush(batch)
        self._wait_for_receipts()

    def _wait_for_receipts(self) -> None:
        # A receipt lost here costs only a resend from the node; waiting keeps that rare.
        deadline = time.monotonic() + _RECEIPT_WAIT_S
        for info in self._receipts:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                return

    def _count_retry(self) -> None:
        self.counters.store_retries += 1

    def _summary(self, seconds: float) -> None:
        c = self.counters
        received, points = self._last_counts
        self._last_counts = (c.received, c.points)
        self._log.info(
            "collector_summary",
            messages_per_s=round((c.received - received) / seconds, 1),
            points_per_s=round((c.points - points) / seconds, 1),
            received=c.received,
            stored=c.stored,
            points=c.points,
            batches=c.batches,
            mean_batch=round(c.points / c.batches, 1) if c.batches else 0,
            in_flight=self._inbox.qsize(),
            dead_letters=c.dead_letters,
            store_retries=c.store_retries,
        )


__all__ = ["Collector", "Counters"]
