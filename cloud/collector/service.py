"""The collector: MQTT in, batched durable writes out, ack and receipt only after the write.

Four threads. paho's network thread receives (``loop_start``) and only queues each message; the
collector's own thread (the caller of :meth:`Collector.run`) batches them; the writer thread
hands one batch at a time to the checker (:mod:`cloud.collector.checking`: by default a second
process, which checks every message against the contract and writes it to the store or the
dead-letter store); the settler waits for each batch to be written, in the order they were
handed over, then acks every message of it to the broker in the order they came and sends each
node a receipt per stream. Nothing is acked that is not in the store or the dead-letter store,
so a crash at any point loses nothing: the broker keeps the unacked messages in the persistent
session and delivers them again, and the store writes them idempotently.

Batches are a group commit: the moment the writer is free it takes everything received so far
(what is already queued is taken first, for at most ``max_delay_ms``), and while it writes, the
next batch fills up, up to ``max_points``. A lone message is written at once; under load,
batches grow by themselves to what the store absorbs per write, and receiving the next batch
overlaps checking and storing this one.

The broker never has more than ``max_inflight`` unacked messages out to us (MQTT 5 Receive
Maximum, sent in CONNECT), which bounds what the collector holds: backpressure, not memory.
Over MQTT 3.1.1 (``protocol = "3.1.1"``, for brokers such as amqtt) there is no Receive Maximum:
paho's thread then waits for a free one of ``max_inflight`` slots before it queues a message, so
TCP holds the broker back instead.
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

from cloud.collector import lean_properties
from cloud.collector.batch import Abandoned, Batch, Received, Written
from cloud.collector.checking import Checker, Pending
from cloud.collector.settings import BatchSection, MqttSection
from cloud.collector.status import StatusWriter
from protocol import Receipt

log = structlog.get_logger(__name__)

#: How long shutdown waits for the broker to confirm the last receipts.
_RECEIPT_WAIT_S = 5.0
#: On stop, messages are still taken until none came for QUIET_S seconds, for at most MAX_S.
_CATCH_UP_QUIET_S = 0.1
_CATCH_UP_MAX_S = 1.0


@dataclass
class Counters:
    """What the collector has done since it started (for the summary log and tests)."""

    received: int = 0
    stored: int = 0
    points: int = 0
    dead_letters: int = 0
    #: Dead letters kept brief (past their node's rate), and older ones dropped for room: the
    #: messages the dead-letter store did not keep in full (see cloud.deadletter).
    dead_letters_brief: int = 0
    dead_letters_dropped: int = 0
    ignored: int = 0
    batches: int = 0
    store_retries: int = 0
    acked: int = 0
    not_acked_stale: int = 0
    receipts: int = 0
    connects: int = 0


class Collector:
    """One collector's work: subscribe, batch, check and write, ack, receipt.

    >>> # collector = Collector(mqtt=cfg.mqtt, batch=cfg.batch, checker=ProcessChecker(cfg))
    >>> # stop = threading.Event(); collector.run(stop)   # returns after stop is set, drained
    """

    def __init__(
        self,
        *,
        mqtt: MqttSection,
        batch: BatchSection,
        checker: Checker,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        status: StatusWriter | None = None,
    ) -> None:
        self.mqtt_cfg = mqtt
        self.batch_cfg = batch
        self.checker = checker
        checker.on_retry = self._count_retry
        self.clock = clock
        self.counters = Counters()
        self.give_up = threading.Event()
        # (message, number of the connection it came on); None wakes the collector's thread
        # when the writer is free again.
        # SimpleQueue: paho's thread puts every message here, and it costs a fraction of Queue.
        self._inbox: queue.SimpleQueue[tuple[paho.MQTTMessage, int] | None] = queue.SimpleQueue()
        # The writer's one slot: a batch to hand to the checker, or None to end.
        self._handoff: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        # Batches the checker has taken, in order: the settler acks each once it is written.
        self._settling: queue.Queue[tuple[Batch, Pending] | None] = queue.Queue()
        self._writer_free = threading.Event()
        self._writer_free.set()
        self._writer_error: BaseException | None = None
        self._receipts: list[paho.MQTTMessageInfo] = []
        self._last_counts = (0, 0)
        self._session = 0
        self._taking = True
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.status = status
        # MQTT 3.1.1 only: one slot per message held, released when its batch is settled.
        self._slots = threading.Semaphore(mqtt.max_inflight) if mqtt.protocol == "3.1.1" else None
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
        if self.status is not None:
            self.status.start(self.status_facts)
        finished = threading.Event()
        watcher = threading.Thread(
            target=self._give_up_after_stop, args=(stop, finished), daemon=True
        )
        watcher.start()
        writer = threading.Thread(target=self._write_loop, name="collector-writer", daemon=True)
        writer.start()
        settler = threading.Thread(target=self._settle_loop, name="collector-acks", daemon=True)
        settler.start()
        batch = Batch()
        last_summary = time.monotonic()
        try:
            while not stop.is_set():
                batch = self._fill(batch, stop)
                self._raise_writer_error()
                if batch and self._writer_free.is_set() and not stop.is_set():
                    self._writer_free.clear()
                    self._handoff.put(batch)
                    batch = Batch()
                now = time.monotonic()
                if now - last_summary >= self.batch_cfg.summary_interval_s:
                    self._summary(now - last_summary)
                    last_summary = now
            self._wait_for_writer()
            self._drain(batch)
        except Abandoned as exc:
            self._log.warning("drain_abandoned", reason=str(exc), note="left unacked")
        finally:
            finished.set()
            # On the way out through an error the writer may still be retrying: end that too.
            self._give_up()
            self._handoff.put(None)
            writer.join()
            self._settling.put(None)
            settler.join()
            if self.status is not None:
                self.status.stop()  # the last file shows what the drain wrote
            self._client.disconnect()
            self._client.loop_stop()
            self._log.info("collector_stopped", **vars(self.counters))

    def _give_up_after_stop(self, stop: threading.Event, finished: threading.Event) -> None:
        while not stop.wait(0.2):
            if finished.is_set():
                return
        if not finished.wait(self.batch_cfg.drain_timeout_s):
            self._give_up()

    def _give_up(self) -> None:
        self.give_up.set()
        self.checker.give_up()

    # -- paho (network thread) ----------------------------------------------------------------

    def _new_client(self) -> paho.Client:
        cfg = self.mqtt_cfg
        lean_properties.install()
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=(
                MQTTProtocolVersion.MQTTv311
                if cfg.protocol == "3.1.1"
                else MQTTProtocolVersion.MQTTv5
            ),
            # 3.1.1 keeps the session by clean_session=False; MQTT 5 by clean_start in connect.
            clean_session=False if cfg.protocol == "3.1.1" else None,
            manual_ack=True,
        )
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.secret().get_secret_value() or None)
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
        if cfg.protocol == "3.1.1":
            self._client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
            self._client.loop_start()
            return
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
        if self._slots is not None:
            while not self._slots.acquire(timeout=0.25):
                if not self._taking:
                    return
        if self._taking:
            self._inbox.put((msg, self._session))
        elif self._slots is not None:
            self._slots.release()

    # -- the collector's thread ---------------------------------------------------------------

    def _fill(self, batch: Batch, stop: threading.Event) -> Batch:
        """Take messages until the writer can have the batch, or ``stop`` is set.

        While the writer is busy, messages are taken as they come (up to a full batch). Once it
        is free, what is already queued is taken too, and the batch goes to the writer when no
        message came for ``idle_ms`` (at once by default), at the latest ``max_delay_ms`` after
        it opened.
        """
        while not stop.is_set() and self._writer_error is None:
            if batch and self._writer_free.is_set():
                self._linger(batch, stop)
                return batch
            if self._full(batch):
                self._writer_free.wait(0.25)
                continue
            try:
                # The writer puts None here when it is done, so this wakes for it too.
                item = self._inbox.get(timeout=0.25)
            except queue.Empty:
                return batch
            if item is not None:
                self._take(*item, batch)
        return batch

    def _linger(self, batch: Batch, stop: threading.Event) -> None:
        """Take queued messages into ``batch`` for the free writer, within idle_ms/max_delay_ms."""
        cfg = self.batch_cfg
        deadline = batch.opened_at + cfg.max_delay_ms / 1000
        idle = cfg.idle_ms / 1000
        quiet_since = time.monotonic()
        while not self._full(batch) and not stop.is_set():
            now = time.monotonic()
            until = min(quiet_since + idle, deadline)
            if now >= deadline:
                return
            try:
                if until > now:
                    # In slices, so that stop is seen during a long idle_ms.
                    item = self._inbox.get(timeout=min(until - now, 0.25))
                else:
                    item = self._inbox.get_nowait()
            except queue.Empty:
                if time.monotonic() < until:
                    continue
                return
            if item is not None:
                self._take(*item, batch)
                quiet_since = time.monotonic()

    def _take(self, msg: paho.MQTTMessage, session: int, batch: Batch) -> None:
        self.counters.received += 1
        batch.add(
            Received(msg.topic, bytes(msg.payload), self.clock(), msg.mid, msg.qos, session),
            time.monotonic(),
        )

    def _full(self, batch: Batch) -> bool:
        # At max_inflight held messages the broker sends no more until we ack: write now.
        return batch.points >= self.batch_cfg.max_points or len(batch) >= self.mqtt_cfg.max_inflight

    def _flush(self, batch: Batch) -> None:
        self._settle(batch, self.checker.submit(batch.messages).result())

    # -- the writer's and the settler's threads -----------------------------------------------

    def _write_loop(self) -> None:
        while (batch := self._handoff.get()) is not None:
            try:
                pending = self.checker.submit(batch.messages)
            except BaseException as exc:  # run() raises it in the collector's thread
                self._writer_error = exc
            else:
                self._settling.put((batch, pending))
            finally:
                self._writer_free.set()
                self._inbox.put(None)

    def _settle_loop(self) -> None:
        while (item := self._settling.get()) is not None:
            batch, pending = item
            try:
                self._settle(batch, pending.result())
            except BaseException as exc:  # run() raises it in the collector's thread
                self._writer_error = exc
                self._inbox.put(None)
            finally:
                self._settling.task_done()

    def _wait_for_writer(self) -> None:
        """Wait until every batch handed over is written and acked (or given up), then raise
        the first error."""
        self._writer_free.wait()
        self._settling.join()
        self._raise_writer_error()

    def _raise_writer_error(self) -> None:
        if self._writer_error is not None:
            raise self._writer_error

    def _settle(self, batch: Batch, written: Written) -> None:
        with self._lock:
            session = self._session
        c = self.counters
        c.batches += 1
        c.stored += written.stored
        c.points += written.points
        c.dead_letters += written.dead_lettered
        c.dead_letters_brief += written.dead_lettered_brief
        c.dead_letters_dropped += written.dead_letters_dropped
        c.ignored += written.ignored
        if self._slots is not None:
            for _ in batch.messages:
                self._slots.release()
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
        """Take what the broker has sent already, stop taking; write, ack and receipt it."""
        self._catch_up(batch)
        self._taking = False
        self._log.info("collector_draining", held=len(batch) + self._inbox.qsize())
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._take(*item, batch)
        if batch:
            self._flush(batch)
        self._wait_for_receipts()

    def _catch_up(self, batch: Batch) -> None:
        # Messages the broker sent before the stop may still be in the socket or in paho's
        # hands; they arrive within moments. Taking them now writes and acks them here instead
        # of leaving them to a redelivery. Bounded: the broker keeps sending until we stop.
        deadline = time.monotonic() + _CATCH_UP_MAX_S
        while time.monotonic() < deadline:
            try:
                item = self._inbox.get(timeout=_CATCH_UP_QUIET_S)
            except queue.Empty:
                return
            if item is not None:
                self._take(*item, batch)

    def _wait_for_receipts(self) -> None:
        # A receipt lost here costs only a resend from the node; waiting keeps that rare.
        deadline = time.monotonic() + _RECEIPT_WAIT_S
        for info in self._receipts:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                return

    def status_facts(self) -> dict[str, Any]:
        """Counters, whether connected and subscribed, and messages queued: for the status file."""
        return {
            **vars(self.counters),
            "connected": self._client.is_connected(),
            "subscribed": self.subscribed.is_set(),
            "in_flight": self._inbox.qsize(),
        }

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
            dead_letters_brief=c.dead_letters_brief,
            dead_letters_dropped=c.dead_letters_dropped,
            store_retries=c.store_retries,
        )


__all__ = ["Collector", "Counters"]
