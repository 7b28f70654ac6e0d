"""The node runtime: agents -> outbox -> MQTT link, and receipts back into the outbox.

Everything runs on one asyncio loop. Agents emit readings; the runtime buffers them in the
outbox and commits every ``outbox.commit_window_ms`` (one fsync for many readings), or at once
for an urgent reading such as a help call. The sender hands due envelopes to the link, never
more than ``mqtt.max_inflight`` unacknowledged at a time; envelopes made since the current
connection came up (live) always go first, and older ones (a backlog after an outage) drain at
``mqtt.backlog_rate`` readings per second on top. An envelope leaves the outbox only when a
receipt from the cloud covers it; one that no receipt covers within ``mqtt.resend_after_s`` is
sent again, and after every reconnect everything held is due again at once. The cloud stores
idempotently, so a resend can never count twice.

A kiosk also sends messages that are not readings (:meth:`NodeRuntime.send_message`, e.g. a
sealed ``consult/request``): they wait in the outbox under a key, go out ahead of envelopes,
are sent again like them, and leave the outbox when the cloud publishes
``{prefix}/v1/{node}/consult/accepted`` with ``{"v": 1, "ticket": key}``. A kiosk's runtime
subscribes to ``consult/#`` and hands ``consult/reply`` payloads to the callback given to
:meth:`NodeRuntime.on_consult_reply`.

Commands arrive on ``{prefix}/v1/{node}/cmd/{name}``. ``rebirth`` is the runtime's own; a part
of the node that wants another command registers for it with :meth:`NodeRuntime.on_command_named`
(the kiosk takes ``cmd/content_pack``, a retained message, so it also arrives at every connect).

Under systemd (``Type=notify``, ``WatchdogSec``) the runtime says ``READY=1`` once it runs and
``WATCHDOG=1`` while its own tasks (link, committer, sender, housekeeping) all run. If one of
them ends before ``stop``, it never pings again, stops the rest, commits what is buffered and
raises :class:`NodeFailed` (the command exits non-zero), so systemd restarts the node instead
of it looking alive while sending nothing. An agent that fails is logged and raised as an alarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import structlog
from paho.mqtt.reasoncodes import ReasonCode

from edge.config import NodeConfig
from edge.errors import EdgeError, OutboxError, OutboxFull
from edge.hardware_setup import open_hardware
from edge.link import MqttLink
from edge.outbox import Outbox, OutboxMessage, OutboxRow
from edge.systemd import sd_notify, watchdog_interval
from protocol import Birth, InvalidMessage, Reading, Receipt, encode_envelope, parse_message
from protocol.topics import VERSION_LEVEL

log = structlog.get_logger(__name__)

#: The same kind of alarm becomes a reading at most this often (the log gets every one).
ALARM_READING_EVERY_S = 60.0
#: How often the runtime writes its status file and checks for envelopes due again.
TICK_S = 0.5


class NodeFailed(EdgeError):
    """One of the runtime's own tasks ended before the node was told to stop."""


def software_version() -> str:
    try:
        return version("machikado")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def status_path(config: NodeConfig) -> Path:
    """Where the running agent writes its link state for ``machikado edge status``."""
    return config.outbox_path.with_name("status.json")


class TokenBucket:
    """Readings per second for the backlog; a burst of one second's worth.

    >>> b = TokenBucket(100.0, now=0.0)
    >>> b.take(150, now=0.0), b.available(now=0.5)
    (True, 0.0)
    """

    def __init__(self, rate: float, *, now: float) -> None:
        self.rate = rate
        self._tokens = rate
        self._at = now

    def available(self, *, now: float) -> float:
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens

    def take(self, n: int, *, now: float) -> bool:
        if self.available(now=now) <= 0:
            return False
        self._tokens -= n
        return True


class NodeRuntime:
    """One node: its agents, outbox and MQTT link, until ``stop`` is set.

    >>> # runtime = NodeRuntime(load_config(path)); asyncio.run(runtime.run(stop))
    """

    def __init__(
        self,
        config: NodeConfig,
        *,
        outbox: Outbox | None = None,
        extra_agents: Sequence[Any] = (),
        notify: bool = True,
    ) -> None:
        self.config = config
        self.node = config.node.id
        self.boot_at = datetime.now(UTC)
        # The link first: it reads the broker password, and one that cannot be read stops the
        # node before it makes an outbox.
        self.link = MqttLink(
            config.mqtt,
            node=self.node,
            username=config.mqtt_username,
            birth=self._birth_payload,
            handler=self,
            on_consult=self._on_consult if config.node.kind == "kiosk" else None,
        )
        self.outbox = outbox or Outbox(
            config.outbox_path,
            node=self.node,
            readings_per_envelope=config.outbox.readings_per_envelope,
            max_readings=config.outbox.max_readings,
            when_full=config.outbox.when_full,
        )
        self._extra_agents = list(extra_agents)
        # False where the process is more than this runtime (the kiosk: its UI loop notifies).
        self._notify = notify
        self.agents: list[Any] = []
        self._inflight: dict[int, OutboxRow] = {}
        self._inflight_messages: dict[int, OutboxMessage] = {}
        self._receipts: list[bytes] = []
        self._accepted: list[str] = []
        self._consult_reply: Callable[[bytes], None] | None = None
        self._commands: dict[str, Callable[[bytes], None]] = {}
        self._wake = asyncio.Event()
        self._commit_now = asyncio.Event()
        self._connected_at: float | None = None
        self._bucket = TokenBucket(config.mqtt.backlog_rate, now=time.monotonic())
        self._alarm_at: dict[str, float] = {}
        self._simulation: Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None = None
        # The runtime's own tasks: while one of them is done, the watchdog is not fed.
        self._essential: list[asyncio.Task[None]] = []
        self.counters = {
            "refused_by_outbox": 0,
            "bad_receipts": 0,
            "alarms": 0,
            "bad_consult_messages": 0,
        }
        self._log = log.bind(node=self.node, stream=self.outbox.stream)

    # ------------------------------------------------------------ agents' side
    def emit(self, reading: Reading, *, urgent: bool = False) -> None:
        """Accept a reading from an agent (on the loop thread)."""
        try:
            self.outbox.append(reading)
        except OutboxFull:
            self.counters["refused_by_outbox"] += 1
            self._log.warning("reading_refused_outbox_full", m=reading.m)
            return
        if urgent or self.outbox.buffered >= self.config.outbox.readings_per_envelope:
            self._commit_now.set()

    async def send_message(self, topic_suffix: str, payload: bytes, *, key: str) -> None:
        """Store a message durably and send it soon, on ``{prefix}/v1/{node}/{topic_suffix}``;
        it stays in the outbox until the cloud accepts ``key`` (on the loop thread)."""
        await asyncio.to_thread(self.outbox.put_message, topic_suffix, payload, key=key)
        self._wake.set()

    def on_consult_reply(self, callback: Callable[[bytes], None] | None) -> None:
        """Who gets ``consult/reply`` payloads, called on the loop thread; None for nobody."""
        self._consult_reply = callback

    def on_command_named(self, name: str, callback: Callable[[bytes], None] | None) -> None:
        """Who gets the payloads of ``cmd/{name}``, called on the loop thread; None for nobody.

        ``rebirth`` stays the runtime's own: it cannot be taken over.
        """
        if name == "rebirth":
            raise ValueError("cmd/rebirth is handled by the runtime itself")
        if callback is None:
            self._commands.pop(name, None)
        else:
            self._commands[name] = callback

    def _birth_payload(self) -> bytes:
        sensors = sorted({s for a in self.agents for s in getattr(a, "sensors", ())})
        birth = Birth(
            node=self.node,
            kind=self.config.node.kind,
            software=software_version(),
            config_digest=self.config.digest(),
            sensors=sensors,
            stream=self.outbox.stream,
            boot_at=self.boot_at,
        )
        return birth.model_dump_json().encode()

    # -------------------------------------------------------------- link side
    def on_connected(self) -> None:
        self._connected_at = time.time()
        self._inflight.clear()
        self._inflight_messages.clear()
        self.outbox.forget_sent()
        self._wake.set()

    def on_disconnected(self) -> None:
        self._connected_at = None
        self._inflight.clear()
        self._inflight_messages.clear()

    def on_ack(self, mid: int, reason: ReasonCode | None) -> None:
        row = self._inflight.pop(mid, None)
        message = self._inflight_messages.pop(mid, None)
        if message is not None and reason is not None and reason.is_failure:
            self._log.error(
                "publish_refused", topic_suffix=message.topic_suffix, reason=str(reason)
            )
            self.on_alarm("publish_refused", f"{message.topic_suffix}: {reason}", reason.value)
        elif reason is not None and reason.is_failure:
            seq = row.seq if row else None
            self._log.error("publish_refused", seq=seq, reason=str(reason), code=reason.value)
            self.on_alarm("publish_refused", f"seq {seq}: {reason}", reason.value)
        self._wake.set()

    def on_receipt(self, payload: bytes) -> None:
        self._receipts.append(payload)
        self._wake.set()

    def _on_consult(self, rest: tuple[str, ...], payload: bytes) -> None:
        if rest == ("accepted",):
            try:
                ticket = json.loads(payload)["ticket"]
                if not isinstance(ticket, str):
                    raise TypeError("ticket is not a string")
            except (ValueError, KeyError, TypeError) as exc:
                self.counters["bad_consult_messages"] += 1
                self._log.warning("bad_consult_accepted", error=str(exc))
                return
            self._accepted.append(ticket)
            self._wake.set()
        elif rest == ("reply",):
            if self._consult_reply is not None:
                self._consult_reply(payload)
        elif rest != ("request",):  # consult/# brings our own requests back too
            self._log.debug("consult_topic_ignored", level="/".join(rest))

    def on_command(self, name: str, payload: bytes) -> None:
        self._log.info("command", name=name, size=len(payload))
        handler = self._commands.get(name)
        if name == "rebirth":
            self.link.publish_birth()
        elif handler is not None:
            try:
                handler(payload)
            except Exception:  # a failing handler must not take the link's callback down
                self._log.exception("command_failed", name=name)
        else:
            self._log.warning("unknown_command", name=name)

    def on_alarm(self, kind: str, detail: str, code: int) -> None:
        """Something the node cannot fix by itself: logged always, a reading now and then."""
        self.counters["alarms"] += 1
        self._log.error("alarm", kind=kind, detail=detail, code=code)
        now = time.monotonic()
        if now - self._alarm_at.get(kind, -ALARM_READING_EVERY_S) >= ALARM_READING_EVERY_S:
            self._alarm_at[kind] = now
            self.emit(
                Reading(
                    m="node_alarm",
                    at=datetime.now(UTC),
                    fields={"kind": kind, "detail": detail[:200], "code": code},
                ),
                urgent=True,
            )

    def link_stats(self) -> dict[str, int | float | bool]:
        numbers = self.link.stats.numbers()
        numbers["inflight"] = len(self._inflight)
        numbers.update(self.counters)
        return numbers

    # ------------------------------------------------------------------ tasks
    async def run(self, stop: asyncio.Event) -> None:
        """Run agents, committer, sender and link until ``stop``; then flush and close.

        Raises :class:`NodeFailed` (after flushing and closing) when one of the runtime's own
        tasks ended first.
        """
        self.agents = self._build_agents() + self._extra_agents
        self._log.info(
            "node_starting", kind=self.config.node.kind, agents=[a.name for a in self.agents]
        )
        # What the tasks stop on: the caller's stop, or a failure. Not the caller's own event,
        # which may stop other nodes too (the demo runs several on one loop).
        halt = asyncio.Event()
        self._essential = [
            asyncio.create_task(self.link.run(halt), name="link"),
            asyncio.create_task(self._committer(halt), name="committer"),
            asyncio.create_task(self._sender(halt), name="sender"),
            asyncio.create_task(self._housekeeping(halt), name="housekeeping"),
        ]
        tasks = list(self._essential)
        tasks += [asyncio.create_task(a.run(halt), name=f"agent-{a.name}") for a in self.agents]
        if self._simulation is not None:
            tasks.append(asyncio.create_task(self._simulation(halt), name="simulation"))
        if self._notify:
            sd_notify("READY=1")
        failure: NodeFailed | None = None
        try:
            failure = await self._supervise(stop, tasks)
        finally:
            halt.set()
            for a in self.agents:
                with contextlib.suppress(Exception):
                    a.close()
            await asyncio.gather(*tasks, return_exceptions=True)
            seqs = self.outbox.commit()
            self._write_status()
            stats = self.outbox.stats()
            self.outbox.close()
            self._log.info(
                "node_stopped",
                committed_at_exit=len(seqs),
                last_seq=stats.last_seq,
                pending_rows=stats.pending_rows,
            )
        if failure is not None:
            raise failure

    async def _supervise(
        self, stop: asyncio.Event, tasks: Sequence[asyncio.Task[None]]
    ) -> NodeFailed | None:
        """Wait for ``stop``. A runtime task that ends first is the node's failure (returned);
        an agent that fails is logged and raised as an alarm, and the node goes on."""
        stopper = asyncio.create_task(stop.wait(), name="stop")
        watched = set(tasks)
        try:
            while not stop.is_set():
                done, _ = await asyncio.wait(
                    {stopper, *watched}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done - {stopper}:
                    watched.discard(task)
                    error = None if task.cancelled() else task.exception()
                    if task in self._essential:
                        return self._failed(task.get_name(), error)
                    if error is not None:
                        self._log.error(
                            "agent_failed", task=task.get_name(), error=repr(error), exc_info=error
                        )
                        self.on_alarm("agent_failed", f"{task.get_name()}: {error!r}", 0)
            return None
        finally:
            stopper.cancel()

    def _failed(self, task: str, error: BaseException | None) -> NodeFailed:
        what = "ended" if error is None else f"failed ({type(error).__name__}: {error})"
        self._log.error("node_task_failed", task=task, error=what, exc_info=error)
        if self._notify:
            sd_notify(f"STATUS=task {task} {what}; stopping so that systemd restarts the node")
        return NodeFailed(f"node {self.node}: its {task} task {what}; the node stops")

    def healthy(self) -> bool:
        """Whether every task of the runtime's own still runs (the watchdog is fed only then)."""
        return not any(task.done() for task in self._essential)

    def _build_agents(self) -> list[Any]:
        from edge.agents import AgentContext, build_agents

        hw = open_hardware(self.config)
        self._simulation = hw.simulation
        ctx = AgentContext(
            node=self.node,
            config=self.config,
            emit=self.emit,
            pin_factory=hw.pin_factory,
            radio=hw.radio,
            outbox_stats=self.outbox.stats,
            link_stats=self.link_stats,
            clock=lambda: datetime.now(UTC),
        )
        agents: list[Any] = list(build_agents(ctx))
        if self.config.simulation.synthetic_rate > 0:
            from edge.synthetic import SyntheticAgent

            agents.append(SyntheticAgent(self.config.simulation, emit=self.emit))
        return agents

    async def _committer(self, stop: asyncio.Event) -> None:
        window = self.config.outbox.commit_window_ms / 1000
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._commit_now.wait(), window)
            self._commit_now.clear()
            if self.outbox.buffered:
                seqs = await asyncio.to_thread(self.outbox.commit)
                if seqs:
                    self._wake.set()

    async def _sender(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            self._wake.clear()
            if self._receipts:
                await self._apply_receipts()
            if self._accepted:
                await self._apply_accepted()
            if self.link.connected and self._connected_at is not None:
                await self._send_due()

    async def _apply_receipts(self) -> None:
        batch, self._receipts = self._receipts, []
        receipts: list[Receipt] = []
        for payload in batch:
            try:
                receipts.append(parse_message(Receipt, payload))
            except InvalidMessage as exc:
                self.counters["bad_receipts"] += 1
                self._log.warning("bad_receipt", reasons=list(exc.reasons)[:5], size=len(payload))

        def apply() -> list[tuple[Receipt, OutboxError]]:
            refused = []
            for r in receipts:
                try:
                    self.outbox.receipt(r.stream, r.ranges)
                except OutboxError as exc:  # this receipt only: the next may well apply
                    refused.append((r, exc))
            return refused

        if receipts:
            for receipt, error in await asyncio.to_thread(apply):
                self.counters["bad_receipts"] += 1
                self._log.warning(
                    "bad_receipt", receipt_stream=receipt.stream, reasons=[str(error)]
                )

    async def _apply_accepted(self) -> None:
        batch, self._accepted = self._accepted, []

        def apply() -> None:
            for key in batch:
                self.outbox.ack_message(key)

        await asyncio.to_thread(apply)

    async def _send_due(self) -> None:
        cfg = self.config
        room = cfg.mqtt.max_inflight - len(self._inflight) - len(self._inflight_messages)
        if room <= 0 or self._connected_at is None:
            return
        room -= await self._send_due_messages(room)
        if room <= 0:
            return
        per = cfg.outbox.readings_per_envelope
        now = time.time()
        live = await asyncio.to_thread(
            self.outbox.due,
            now=now,
            resend_after=cfg.mqtt.resend_after_s,
            limit_readings=room * per,
            created_since=self._connected_at,
        )
        rows = live[:room]
        room -= len(rows)
        mono = time.monotonic()
        budget = int(self._bucket.available(now=mono))
        if room > 0 and budget > 0:
            backlog = await asyncio.to_thread(
                self.outbox.due,
                now=now,
                resend_after=cfg.mqtt.resend_after_s,
                limit_readings=min(budget, room * per),
                created_before=self._connected_at,
            )
            backlog = backlog[:room]
            self._bucket.take(sum(r.n_readings for r in backlog), now=mono)
            rows += backlog
        if not rows:
            return
        sent: list[int] = []
        topic = self.link.topics.data(self.node)
        sent_at = datetime.now(UTC)
        for row in rows:
            payload = encode_envelope(
                node=self.node,
                stream=self.outbox.stream,
                seq=row.seq,
                sent_at=sent_at,
                readings_json=row.readings_json,
            )
            mid = self.link.publish(topic, payload)
            if mid is None:
                break
            self._inflight[mid] = row
            sent.append(row.seq)
        if sent:
            await asyncio.to_thread(self.outbox.mark_sent, sent)
            if len(rows) == len(sent) and (
                len(rows) >= cfg.mqtt.max_inflight or self._bucket.available(now=mono) > 0
            ):
                self._wake.set()

    async def _send_due_messages(self, room: int) -> int:
        """Hand due messages (few, and a person may be waiting) to the link; return how many."""
        messages = await asyncio.to_thread(
            self.outbox.due_messages,
            now=time.time(),
            resend_after=self.config.mqtt.resend_after_s,
            limit=room,
        )
        sent: list[int] = []
        base = f"{self.link.topics.prefix}/{VERSION_LEVEL}/{self.node}"
        for message in messages:
            mid = self.link.publish(f"{base}/{message.topic_suffix}", message.payload)
            if mid is None:
                break
            self._inflight_messages[mid] = message
            sent.append(message.id)
        if sent:
            await asyncio.to_thread(self.outbox.mark_messages_sent, sent)
            self._log.debug("messages_sent", count=len(sent))
        return len(sent)

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        watchdog = watchdog_interval() if self._notify else 0.0
        last_ping = 0.0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)
            self._write_status()
            now = time.monotonic()
            if watchdog and now - last_ping >= watchdog and self.healthy():
                sd_notify("WATCHDOG=1")
                last_ping = now

    def _write_status(self) -> None:
        path = status_path(self.config)
        data = {
            "pid": os.getpid(),
            "written_at": time.time(),
            "boot_at": self.boot_at.isoformat(),
            "link": {**self.link_stats(), "protocol": self.link.stats.protocol},
        }
        tmp = path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(data), encoding="utf-8")
            tmp.replace(path)


__all__ = [
    "NodeFailed",
    "NodeRuntime",
    "TokenBucket",
    "sd_notify",
    "software_version",
    "status_path",
]
