"""The kiosk as a node: the edge runtime on a background thread, consultation and usage counts.

:class:`KioskNode` runs :class:`edge.runtime.NodeRuntime` (outbox, MQTT link, the node health
agent) on an asyncio loop of its own thread, so the Kivy main loop never waits for the network.
A consultation request is sealed here, on the caller's thread, and stored in the outbox before
:meth:`KioskNode.request_consultation` returns its ticket; the runtime sends it, sends it again
until the consultation service says ``consult/accepted``, and hands back ``consult/reply``. A
request runs out after ``kiosk.consult_ttl_s`` (30 minutes by default): the node then drops it
from the outbox, so it is sent no more and its ticket number is free again, and, if it is the
current session's and no answer came, forgets its ticket and key and tells the app
(:meth:`KioskNode.on_request_expired`).

Usage is counted, never sent per session: :meth:`KioskNode.count_session` adds a finished
session to a :class:`~kiosk.usage.UsageCounter`, and the node sends a period's counts (small
ones suppressed) once the period has ended. A clean stop keeps the open period's counts in
``kiosk-usage.json`` (0600) beside the outbox for the next start; a power cut loses them.

New content packs come as the retained command ``{prefix}/v1/{node}/cmd/content_pack``, so the
current one also arrives at every connect; :meth:`KioskNode.on_content_pack` hands each payload
(through ``dispatch``) to the app, which validates it before it replaces the pack in use.

Privacy: the node remembers only the current session's ticket and the reply key; a reply for
any other ticket, such as a late answer for the resident before a wipe, is dropped unread (it
can still be fetched by phone with the QR code). :meth:`KioskNode.wipe` forgets the ticket,
the key and the reply, and cancels deliveries not yet made. Logs name no ticket, code,
language or answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from edge.config import NodeConfig
from kiosk.consult import (
    DEFAULT_CONSULT_URL,
    REQUEST_SUFFIX,
    ConsultDraft,
    ConsultError,
    ConsultReply,
    ConsultRequest,
    ReplyKey,
    Ticket,
    check_consult_url,
    decode_key,
    request_message,
    seal_request,
    ticket_of,
)
from kiosk.errors import failure_of
from kiosk.session import SessionUsage
from kiosk.usage import STATE_FILE, UsageCounter

if TYPE_CHECKING:
    from edge.outbox import Outbox
    from edge.runtime import NodeRuntime

log = structlog.get_logger(__name__)

#: Called with (ticket, reply text, reply language) when the doctor's answer arrives.
ReplyCallback = Callable[[Ticket, str, str], None]
#: Called with the current session's ticket when its request ran out unanswered.
ExpiredCallback = Callable[[Ticket], None]
#: Called with the raw bytes of a content pack that arrived over MQTT (not yet validated).
PackCallback = Callable[[bytes], None]
#: The command a new content pack arrives as: ``{prefix}/v1/{node}/cmd/content_pack``.
CONTENT_PACK_COMMAND = "content_pack"
#: Runs a delivery where the app wants it, e.g. ``lambda fn: Clock.schedule_once(lambda _: fn())``.
Dispatch = Callable[[Callable[[], None]], None]

#: How long start, stop and storing a request may take before it is an error.
TIMEOUT_S = 30.0
#: How often the node looks whether a usage period has ended or a request ran out.
TICK_S = 0.5


def _now_here(fn: Callable[[], None]) -> None:
    fn()


class KioskNode:
    """The kiosk's node runtime in a background thread, and its consultation state.

    Example (``dispatch`` puts reply deliveries on Kivy's thread)::

        node = KioskNode(load_config(path), dispatch=lambda fn: Clock.schedule_once(
            lambda _dt: fn()))
        node.on_reply(lambda ticket, text, language: show(text))
        node.start()
        ticket = node.request_consultation({"answers": [...], "tier": "green",
                                            "language": "en", "age_band": "adult"})
        show_qr(ticket.qr_payload)
        ...
        node.count_session(session.usage()); node.wipe(); session.wipe()
        node.stop()
    """

    def __init__(
        self,
        config: NodeConfig,
        *,
        public_key: bytes | None = None,
        consult_url: str | None = None,
        dispatch: Dispatch = _now_here,
        outbox: Outbox | None = None,
        usage_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.node = config.node.id
        if public_key is None and config.kiosk.consult_public_key:
            public_key = decode_key(config.kiosk.consult_public_key)
        elif public_key is not None:
            decode_key_bytes(public_key)
        self._public_key = public_key
        self.consult_url = check_consult_url(
            consult_url or config.kiosk.consult_url or DEFAULT_CONSULT_URL
        )
        self._dispatch = dispatch
        self._outbox = outbox
        #: This kiosk's usage counts (kiosk.usage), kept over a clean restart.
        self.usage = UsageCounter(
            period_s=config.kiosk.usage_period_s,
            k=config.kiosk.usage_min_count,
            clock=usage_clock,
            state_path=config.node.data_dir / STATE_FILE,
        )
        self._lock = threading.Lock()
        self._callbacks: list[ReplyCallback] = []
        self._expired_callbacks: list[ExpiredCallback] = []
        self.consult_ttl_s = config.kiosk.consult_ttl_s
        self._pack_callbacks: list[PackCallback] = []
        # Session state: everything here is dropped by wipe().
        self._ticket: Ticket | None = None
        self._reply_key: ReplyKey | None = None
        self._reply: ConsultReply | None = None
        self._generation = 0  # wipe() bumps it; a delivery of an older one is dropped
        self._pending = 0  # deliveries handed to dispatch and not yet run
        # The runtime thread.
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._runtime: NodeRuntime | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._log = log.bind(node=self.node)

    # ------------------------------------------------------------- lifecycle
    def start(self, timeout: float = TIMEOUT_S) -> None:
        """Open the outbox and start the runtime thread; return once the outbox is open."""
        if self._thread is not None:
            raise ConsultError(f"kiosk node {self.node} is already started")
        self._thread = threading.Thread(target=self._main, name=f"node-{self.node}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ConsultError(f"kiosk node {self.node} did not start within {timeout:g} s")
        if self._error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise self._error

    def stop(self, timeout: float = TIMEOUT_S) -> None:
        """Stop the runtime: what is buffered is committed, the outbox closed; idempotent."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():

            def finish() -> None:
                # Periods that have ended go into the outbox before its last commit.
                self._send_usage()
                stop.set()

            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(finish)
        thread.join(timeout)
        if thread.is_alive():
            raise ConsultError(f"kiosk node {self.node} did not stop within {timeout:g} s")
        self._thread = None
        try:
            self.usage.save()
        except OSError as exc:
            self._log.error("kiosk_usage_not_saved", error=exc.strerror or str(exc))
        self._log.info("kiosk_node_stopped")

    def __enter__(self) -> KioskNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported to start(), or logged if it was running
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                self._log.exception("kiosk_node_failed")

    async def _run(self) -> None:
        # Imported here, on the node's thread: the MQTT stack is not needed for the first frame.
        from edge.runtime import NodeRuntime

        # The app tells systemd how the kiosk is, from its UI loop: a frozen screen must stop
        # the watchdog even while this thread still runs.
        runtime = NodeRuntime(self.config, outbox=self._outbox, notify=False)
        runtime.on_consult_reply(self._on_reply_payload)
        runtime.on_command_named(CONTENT_PACK_COMMAND, self._on_pack_payload)
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._runtime = runtime
        restored = await asyncio.to_thread(self.usage.restore)
        if restored:
            self._log.info("kiosk_usage_restored", periods=restored)
        self._ready.set()
        ticks = asyncio.create_task(self._ticks(self._stop), name="kiosk-ticks")
        try:
            await runtime.run(self._stop)
        finally:
            ticks.cancel()
            await asyncio.gather(ticks, return_exceptions=True)

    async def _ticks(self, stop: asyncio.Event) -> None:
        """Send each usage period's counts once it has ended; let requests run out."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)
            if stop.is_set():
                break
            self._send_usage()
            try:
                await self._expire_requests()
            except Exception:  # a failed look now is tried again at the next tick
                self._log.exception("consult_expiry_failed")

    async def _expire_requests(self) -> None:
        """Drop requests older than the TTL from the outbox; tell the app if the current
        session's ran out unanswered (loop thread)."""
        runtime = self._runtime
        if runtime is None:
            return
        ttl = self.consult_ttl_s
        dropped = await asyncio.to_thread(
            runtime.outbox.drop_messages,
            topic_suffix=REQUEST_SUFFIX,
            created_before=time.time() - ttl,
        )
        if dropped:
            self._log.info("consult_requests_ran_out", count=len(dropped))
        now = datetime.now(UTC)
        with self._lock:
            ticket, generation = self._ticket, self._generation
            if (
                ticket is None
                or self._reply is not None
                or (now - ticket.created_at).total_seconds() < ttl
            ):
                return
            # Like a wipe of the request alone: a late answer is dropped unread.
            self._ticket = self._reply_key = None
            callbacks = list(self._expired_callbacks)
            self._pending += 1

        def deliver() -> None:
            with self._lock:
                if self._generation != generation:
                    return  # wiped meanwhile: the next resident must not see it
                self._pending -= 1
            for callback in callbacks:
                try:
                    callback(ticket)
                except Exception:
                    self._log.exception("consult_expired_callback_failed")

        self._dispatch(deliver)

    def _send_usage(self) -> None:
        """The readings of every usage period that has ended, into the outbox (loop thread)."""
        runtime = self._runtime
        if runtime is None:
            return
        readings = self.usage.closed()
        for reading in readings:
            runtime.emit(reading)
        if readings:
            periods = sorted({r.at for r in readings})
            self._log.info(
                "kiosk_usage_sent",
                periods=[p.isoformat() for p in periods],
                readings=len(readings),
            )

    @property
    def runtime(self) -> NodeRuntime:
        """The running runtime (its outbox and link); an error before :meth:`start`."""
        if self._runtime is None or self._loop is None or self._thread is None:
            raise ConsultError(f"kiosk node {self.node} is not started")
        return self._runtime

    @property
    def running(self) -> bool:
        """Whether the runtime thread is running (between :meth:`start` and :meth:`stop`)."""
        return self._thread is not None

    @property
    def healthy(self) -> bool:
        """Whether the runtime thread and every task of the runtime's own still run."""
        thread, runtime = self._thread, self._runtime
        return (
            thread is not None and thread.is_alive() and runtime is not None and runtime.healthy()
        )

    @property
    def connected(self) -> bool:
        """Whether the MQTT link is up now."""
        return self._runtime is not None and self._runtime.link.connected

    # ---------------------------------------------------------- consultation
    def request_consultation(self, request: Mapping[str, Any] | ConsultDraft) -> Ticket:
        """Seal and store a request for a remote doctor; return the resident's ticket.

        ``request`` holds ``answers`` (each ``{"question", "answer"}`` as the resident saw them,
        optionally ``question_id`` / ``answer_id``), ``tier``, ``language`` and ``age_band``.
        The request is in the outbox, sealed, when this returns; it goes out when the link is
        up. A later request in the same session replaces the ticket of an earlier one.
        """
        if self._public_key is None:
            raise ConsultError(
                "no consultation service key: set kiosk.consult_public_key in the node config"
            )
        try:
            draft = (
                request
                if isinstance(request, ConsultDraft)
                else ConsultDraft.model_validate(dict(request))
            )
        except ValidationError as exc:
            # Name the fields only: the values are the resident's answers.
            where = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            raise ConsultError(f"consultation request: bad fields: {', '.join(where)}") from None
        runtime, loop = self.runtime, self._loop
        assert loop is not None
        pending = frozenset(runtime.outbox.message_keys())
        ticket = Ticket.new(consult_url=self.consult_url, avoid=pending)
        reply_key = ReplyKey()
        sealed = seal_request(
            ConsultRequest(
                kiosk=self.node,
                ticket=ticket.number,
                code=ticket.code,
                tier=draft.tier,
                language=draft.language,
                age_band=draft.age_band,
                answers=draft.answers,
                reply_key=reply_key.public,
            ),
            self._public_key,
        )
        payload = request_message(kiosk=self.node, ticket=ticket.number, sealed=sealed)
        # The ticket is current before the request can leave, so no reply can come first.
        with self._lock:
            previous = (self._ticket, self._reply_key, self._reply)
            self._ticket, self._reply_key, self._reply = ticket, reply_key, None
        future = asyncio.run_coroutine_threadsafe(
            runtime.send_message(REQUEST_SUFFIX, payload, key=ticket.number), loop
        )
        try:
            future.result(TIMEOUT_S)
        except BaseException as exc:
            with self._lock:
                if self._ticket is ticket:
                    self._ticket, self._reply_key, self._reply = previous
            if isinstance(exc, FutureTimeout):
                raise ConsultError(
                    f"kiosk node {self.node}: the outbox did not store the request within "
                    f"{TIMEOUT_S:g} s"
                ) from None
            raise
        self._log.info("consult_request_stored", pending=len(pending) + 1)
        return ticket

    def on_request_expired(self, callback: ExpiredCallback) -> None:
        """Call ``callback(ticket)`` (through ``dispatch``) when the current session's request
        ran out (``kiosk.consult_ttl_s``) without an answer; the node has forgotten it then."""
        with self._lock:
            self._expired_callbacks.append(callback)

    def on_reply(self, callback: ReplyCallback) -> None:
        """Call ``callback(ticket, text, language)`` (through ``dispatch``) whenever the doctor
        answers the current session's ticket. Registered for the app's lifetime, not a
        session's: wipe() drops the replies, not the callbacks."""
        with self._lock:
            self._callbacks.append(callback)

    @property
    def current_ticket(self) -> Ticket | None:
        """The current session's ticket, if it asked for a doctor."""
        with self._lock:
            return self._ticket

    @property
    def reply(self) -> ConsultReply | None:
        """The doctor's answer for the current session's ticket, once it arrived."""
        with self._lock:
            return self._reply

    @property
    def pending_deliveries(self) -> int:
        """Replies handed to ``dispatch`` and not yet delivered (0 after a wipe)."""
        with self._lock:
            return self._pending

    def is_current(self, ticket: Ticket) -> bool:
        """Whether ``ticket`` still belongs to the session on screen."""
        with self._lock:
            return self._ticket is ticket

    def wipe(self) -> None:
        """Forget the session: its ticket, reply key and reply; cancel pending deliveries."""
        with self._lock:
            self._ticket = None
            self._reply_key = None
            self._reply = None
            self._generation += 1
            self._pending = 0

    def _on_reply_payload(self, payload: bytes) -> None:
        """A ``consult/reply`` arrived (on the node's loop thread)."""
        try:
            number = ticket_of(payload)
        except ConsultError as exc:
            self._log.warning("consult_reply_malformed", error=str(exc))
            return
        with self._lock:
            ticket, key, generation = self._ticket, self._reply_key, self._generation
        if ticket is None or key is None or number != ticket.number:
            self._log.info("consult_reply_not_for_this_session")
            return
        try:
            reply = key.open(payload)
        except ConsultError as exc:
            self._log.warning("consult_reply_unreadable", error=str(exc))
            return
        with self._lock:
            if self._generation != generation:
                return
            self._reply = reply
            callbacks = list(self._callbacks)
            self._pending += 1
        self._log.info("consult_reply_received")

        def deliver() -> None:
            with self._lock:
                if self._generation != generation:
                    return  # wiped meanwhile: the next resident must not see it
                self._pending -= 1
            for callback in callbacks:
                try:
                    callback(ticket, reply.text, reply.language)
                except Exception as exc:
                    # Not log.exception: the message may quote the reply. Where it failed is
                    # enough to find the bug.
                    self._log.error("consult_reply_callback_failed", **failure_of(exc))

        self._dispatch(deliver)

    # ---------------------------------------------------------- content packs
    def on_content_pack(self, callback: PackCallback) -> None:
        """Call ``callback(raw)`` (through ``dispatch``) with each content pack that arrives as
        ``cmd/content_pack``; validating it is the callback's job. Not session state: a wipe
        keeps it. An empty payload (the cloud cleared the retained pack) is not handed on."""
        with self._lock:
            self._pack_callbacks.append(callback)

    def _on_pack_payload(self, payload: bytes) -> None:
        """A ``cmd/content_pack`` arrived (on the node's loop thread)."""
        if not payload:
            self._log.info("content_pack_cleared_keeping_current")
            return
        with self._lock:
            callbacks = list(self._pack_callbacks)
        self._log.info("content_pack_received", size=len(payload))

        def deliver() -> None:
            for callback in callbacks:
                try:
                    callback(payload)
                except Exception:
                    self._log.exception("content_pack_callback_failed")

        self._dispatch(deliver)

    # ------------------------------------------------------------------ usage
    def count_session(self, usage: SessionUsage) -> None:
        """Count one finished session into the current period's usage; nothing is sent now."""
        self.usage.add(usage)

    def declare_usage(self, dimension: str, values: Sequence[str]) -> None:
        """Values a usage dimension can take (``language``: the catalog's codes,
        ``info_category``: the pack's ``what`` tags); each is sent every period."""
        self.usage.declare(dimension, values)


def decode_key_bytes(key: bytes) -> bytes:
    """``key`` if it has the size of an X25519 public key; else a clear error."""
    if len(key) != 32:
        raise ConsultError(
            f"the consultation service's public key is {len(key)} bytes; an X25519 key is 32"
        )
    return key
