"""The node's MQTT link: one paho-mqtt 2.x client driven by the asyncio loop.

paho's socket is served by the event loop itself (paho's external-loop callbacks, the pattern
aiomqtt uses), so every callback, publish and ack happens on the loop thread and the runtime
needs no locks. The link connects with MQTT 5 and falls back to 3.1.1 when the broker refuses
the protocol version or, before any MQTT 5 connect has worked, leaves the CONNECT unanswered
(see :data:`CONNACK_TIMEOUT_S`); reconnects with exponential backoff and full jitter, so a
fleet does not reconnect in step after a broker restart; announces the node with a retained
birth and ``online`` state, leaves ``offline`` as its last will, and re-subscribes on every
connect.

The link only moves bytes. What to send, and what an ack or receipt means for the outbox, is
the runtime's business (see :mod:`edge.runtime`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.config import MqttSection
from protocol import OFFLINE, ONLINE, Topics

log = structlog.get_logger(__name__)

#: CONNACK reason of an MQTT 5 broker that does not speak MQTT 5 (and 3.1.1's return code 1).
UNSUPPORTED_PROTOCOL = 132
#: How long an MQTT 5 CONNECT may go unanswered before ``auto`` tries 3.1.1 instead. A 3.1.1-only
#: broker does not always say so: amqtt 0.12 misreads the MQTT 5 properties of a CONNECT that
#: carries a will or a username as payload, logs "Failed to initialize client session" and
#: neither answers nor closes the socket. Any working broker answers a CONNECT well within this.
CONNACK_TIMEOUT_S = 10.0
#: CONNACK reasons that mean our credentials or ACL are wrong: an alarm, not a network blip.
AUTH_REFUSED = frozenset({134, 135, 4, 5})


class LinkHandler(Protocol):
    """What the runtime does when the link reports something; called on the loop thread."""

    def on_connected(self) -> None: ...
    def on_disconnected(self) -> None: ...
    def on_ack(self, mid: int, reason: ReasonCode | None) -> None: ...
    def on_receipt(self, payload: bytes) -> None: ...
    def on_command(self, name: str, payload: bytes) -> None: ...
    def on_alarm(self, kind: str, detail: str, code: int) -> None: ...


def backoff_delays(low: float, high: float, rng: random.Random) -> Iterator[float]:
    """Exponential backoff with full jitter: uniform(low, min(high, low * 2**n)).

    >>> d = backoff_delays(1.0, 8.0, random.Random(0))
    >>> all(1.0 <= next(d) <= 8.0 for _ in range(20))
    True
    """
    ceiling = low
    while True:
        yield rng.uniform(low, ceiling)
        ceiling = min(high, ceiling * 2)


@dataclass
class LinkStats:
    """Counters of the link, reported by ``edge status`` and the node health agent."""

    connected: bool = False
    protocol: str = ""
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    published: int = 0
    acked: int = 0
    alarms: int = 0
    last_alarm: str = ""
    extra: dict[str, int] = field(default_factory=dict)

    def numbers(self) -> dict[str, int | float | bool]:
        return {
            "connected": self.connected,
            "connects": self.connects,
            "connect_failures": self.connect_failures,
            "disconnects": self.disconnects,
            "published": self.published,
            "acked": self.acked,
            "alarms": self.alarms,
        }


class MqttLink:
    """The MQTT connection of one node.

    >>> # inside a running loop:
    >>> # link = MqttLink(cfg.mqtt, node="rr-01", birth=lambda: b"{}", handler=runtime)
    >>> # task = asyncio.create_task(link.run(stop)); mid = link.publish(topic, payload)
    """

    def __init__(
        self,
        settings: MqttSection,
        *,
        node: str,
        username: str,
        birth: Callable[[], bytes],
        handler: LinkHandler,
        rng: random.Random | None = None,
        on_consult: Callable[[tuple[str, ...], bytes], None] | None = None,
    ) -> None:
        self.settings = settings
        self.node = node
        self.username = username
        self.topics = Topics(settings.prefix)
        self._birth = birth
        self._handler = handler
        # Read once, at start: a password file that cannot be read is an error now, not at
        # every reconnect.
        self._password = settings.secret()
        # A kiosk's consultation traffic (consult/accepted, consult/reply); None: not subscribed.
        self._on_consult = on_consult
        self._rng = rng or random.Random()
        self._protocol: Literal["5", "3.1.1"] = "3.1.1" if settings.protocol == "3.1.1" else "5"
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed: asyncio.Event | None = None
        self._misc: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self.stats = LinkStats()
        self._was_up = False
        self._fallback = False
        # Whether the broker answered this session's CONNECT at all (accepted or refused).
        self._answered: asyncio.Event | None = None
        # An MQTT 5 session has worked: from then on silence is the network, not the protocol.
        self._v5_worked = False
        # The fallback to 3.1.1 was a guess from silence, not the broker's word.
        self._fell_back_on_silence = False
        self._log = log.bind(node=node)

    # ----------------------------------------------------------------- public
    @property
    def connected(self) -> bool:
        return self.stats.connected

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> int | None:
        """Queue a message; return its mid, or None when not connected (nothing queued)."""
        client = self._client
        if client is None or not self.stats.connected:
            return None
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._log.warning("publish_not_queued", topic=topic, rc=info.rc)
            return None
        self.stats.published += 1
        return info.mid

    def publish_birth(self) -> None:
        self.publish(self.topics.birth(self.node), self._birth(), retain=True)

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop`` is set; then say ``offline`` and disconnect."""
        self._loop = asyncio.get_running_loop()
        delays = backoff_delays(
            self.settings.reconnect_min_s, self.settings.reconnect_max_s, self._rng
        )
        while not stop.is_set():
            outcome = await self._session(stop)
            if stop.is_set():
                break
            if outcome == "retry-now":
                continue
            if outcome == "was-up":
                delays = backoff_delays(
                    self.settings.reconnect_min_s, self.settings.reconnect_max_s, self._rng
                )
            delay = next(delays)
            self._log.info("mqtt_reconnect_in", delay_s=round(delay, 2))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    # ---------------------------------------------------------------- session
    async def _session(self, stop: asyncio.Event) -> str:
        """One connection from connect to disconnect. Returns how it ended."""
        assert self._loop is not None
        client = self._new_client()
        self._client = client
        self._closed = asyncio.Event()
        s = self.settings
        # The outbox, not the broker session, holds what is unsent: start clean every time.
        if self._protocol == "5":
            connect = functools.partial(
                client.connect, s.host, s.port, keepalive=s.keepalive_s, clean_start=True
            )
        else:
            connect = functools.partial(client.connect, s.host, s.port, keepalive=s.keepalive_s)
        try:
            # connect() resolves, opens the socket and sends CONNECT: blocking, so off the loop.
            await self._loop.run_in_executor(None, connect)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.stats.connect_failures += 1
            self._log.warning("mqtt_connect_failed", host=s.host, port=s.port, error=str(exc))
            self._teardown(client)
            return "failed"
        self._misc = asyncio.create_task(self._misc_loop(client))
        if self._probing_v5() and not await self._answered_in_time(stop):
            self.stats.connect_failures += 1
            self._fall_back(f"no CONNACK within {CONNACK_TIMEOUT_S:g} s", guessed=True)
        stopper = asyncio.create_task(stop.wait())
        closed = asyncio.create_task(self._closed.wait())
        try:
            await asyncio.wait({stopper, closed}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set() and self.stats.connected:
                await self._say_goodbye(client)
        finally:
            stopper.cancel()
            closed.cancel()
            was_up = self._was_up
            self._teardown(client)
        assert self._answered is not None
        if not self._answered.is_set() and not stop.is_set() and not self._fallback:
            self._unanswered()
        if self._fallback:
            self._fallback = False
            return "retry-now"
        return "was-up" if was_up else "failed"

    # --------------------------------------------------------------- fallback
    def _probing_v5(self) -> bool:
        """Whether this session's CONNECT is ``auto`` asking a broker not yet known for MQTT 5."""
        return self.settings.protocol == "auto" and self._protocol == "5" and not self._v5_worked

    async def _answered_in_time(self, stop: asyncio.Event) -> bool:
        """Wait for a CONNACK, the socket closing or ``stop``; False if none came in time."""
        assert self._answered is not None
        assert self._closed is not None
        waits = [asyncio.create_task(e.wait()) for e in (self._answered, self._closed, stop)]
        try:
            done, _ = await asyncio.wait(
                waits, timeout=CONNACK_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in waits:
                w.cancel()
        return bool(done)

    def _fall_back(self, why: str, *, guessed: bool) -> None:
        """Retry at once with 3.1.1; ``guessed`` when the broker never said why."""
        self._log.warning("mqtt5_refused_falling_back", to="3.1.1", why=why)
        self._protocol = "3.1.1"
        self._fallback = True
        self._fell_back_on_silence = guessed
        self._mark_closed()

    def _unanswered(self) -> None:
        """A session ended without a CONNACK: maybe the protocol, maybe the network."""
        self.stats.connect_failures += 1
        if self._probing_v5():
            self._fall_back("closed without a CONNACK", guessed=True)
        elif self._protocol == "3.1.1" and self._fell_back_on_silence:
            # 3.1.1 got no answer either, so the silence was not about MQTT 5: ask with 5 again.
            self._log.info("mqtt_fallback_undone", to="5")
            self._protocol = "5"
            self._fell_back_on_silence = False

    async def _say_goodbye(self, client: mqtt.Client) -> None:
        # A clean DISCONNECT discards the will, so publish the offline state ourselves.
        info = client.publish(self.topics.state(self.node), OFFLINE, qos=1, retain=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._until_published(info), 3.0)
        client.disconnect()
        assert self._closed is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), 3.0)

    @staticmethod
    async def _until_published(info: mqtt.MQTTMessageInfo) -> None:
        for _ in range(1000):
            if info.is_published():
                return
            await asyncio.sleep(0.01)

    def _teardown(self, client: mqtt.Client) -> None:
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        sock = client.socket()
        if isinstance(sock, socket.socket) and self._loop is not None:
            self._unwatch(sock)
            with contextlib.suppress(OSError):
                sock.close()
        if self.stats.connected:
            self.stats.connected = False
            self.stats.disconnects += 1
            self._handler.on_disconnected()
        if self._client is client:
            self._client = None

    async def _misc_loop(self, client: mqtt.Client) -> None:
        # Keepalive pings and timeouts; paho wants this about once a second.
        while True:
            await asyncio.sleep(1.0)
            if client.loop_misc() == MQTTErrorCode.MQTT_ERR_NO_CONN:
                self._mark_closed()
                return

    def _mark_closed(self) -> None:
        if self._closed is not None:
            self._closed.set()

    # ----------------------------------------------------------------- client
    def _new_client(self) -> mqtt.Client:
        s = self.settings
        v5 = self._protocol == "5"
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.node,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else True,
            reconnect_on_failure=False,
        )
        client.username_pw_set(self.username, self._password.get_secret_value() or None)
        if s.tls:
            client.tls_set(
                ca_certs=str(s.ca_file) if s.ca_file else None,
                certfile=str(s.cert_file) if s.cert_file else None,
                keyfile=str(s.key_file) if s.key_file else None,
            )
        client.will_set(self.topics.state(self.node), OFFLINE, qos=1, retain=True)
        client.max_inflight_messages_set(s.max_inflight)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self._was_up = False
        self._fallback = False
        self._answered = asyncio.Event()
        return client

    # paho's external-loop hooks: the socket is served by asyncio.
    def _in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self._loop is not None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self._in_loop(self._watch, client, sock)

    def _watch(self, client: mqtt.Client, sock: socket.socket) -> None:
        assert self._loop is not None
        if sock.fileno() < 0:
            return
        self._loop.add_reader(sock, self._read, client)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 18)

    def _read(self, client: mqtt.Client) -> None:
        rc = client.loop_read()
        if rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
            self._mark_closed()

    def _write(self, client: mqtt.Client) -> None:
        rc = client.loop_write()
        if rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
            self._mark_closed()

    def _on_socket_close(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self._in_loop(self._unwatch, sock)
        # A client of an earlier session closes its socket again when it is garbage-collected
        # (paho's __del__); that must not end the session that replaced it, such as the 3.1.1
        # retry right after a fallback.
        if client is self._client:
            self._in_loop(self._mark_closed)

    def _unwatch(self, sock: socket.socket) -> None:
        assert self._loop is not None
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(sock)
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(sock)

    def _on_register_write(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        def add() -> None:
            assert self._loop is not None
            if sock.fileno() >= 0:
                self._loop.add_writer(sock, self._write, client)

        self._in_loop(add)

    def _on_unregister_write(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        def remove() -> None:
            assert self._loop is not None
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_writer(sock)

        self._in_loop(remove)

    # --------------------------------------------------------- MQTT callbacks
    def _on_connect(
        self,
        client: mqtt.Client,
        _u: Any,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        code = reason.value
        if self._answered is not None:
            self._answered.set()
        if reason.is_failure:
            self.stats.connect_failures += 1
            if (
                self._protocol == "5"
                and self.settings.protocol == "auto"
                and (code == UNSUPPORTED_PROTOCOL)
            ):
                self._fall_back(str(reason), guessed=False)
                return
            elif code in AUTH_REFUSED:
                self._handler.on_alarm("connect_refused", str(reason), code)
                self._log.error("mqtt_connect_refused", reason=str(reason), code=code)
            else:
                self._log.warning("mqtt_connect_refused", reason=str(reason), code=code)
            self._mark_closed()
            return
        self.stats.connected = True
        self.stats.connects += 1
        self.stats.protocol = self._protocol
        self._was_up = True
        if self._protocol == "5":
            self._v5_worked = True
        else:
            # A 3.1.1 broker answered: the fallback, however it came about, was right.
            self._fell_back_on_silence = False
        t = self.topics
        client.subscribe(t.receipt(self.node), qos=1)
        client.subscribe(t.cmd(self.node, "+"), qos=1)
        if self._on_consult is not None:
            client.subscribe(t.consult(self.node, "#"), qos=1)
        client.publish(t.birth(self.node), self._birth(), qos=1, retain=True)
        client.publish(t.state(self.node), ONLINE, qos=1, retain=True)
        self._log.info("mqtt_connected", protocol=self._protocol, host=self.settings.host)
        self._handler.on_connected()

    def _on_disconnect(
        self,
        _c: mqtt.Client,
        _u: Any,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if self.stats.connected:
            self._log.warning("mqtt_disconnected", reason=str(reason))
        self._mark_closed()

    def _on_publish(
        self,
        _c: mqtt.Client,
        _u: Any,
        mid: int,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        # MQTT 3.1.1 has no reason codes in PUBACK: paho reports success.
        self.stats.acked += 1
        if reason.is_failure:
            self.stats.alarms += 1
            self.stats.last_alarm = str(reason)
        self._handler.on_ack(mid, reason if self._protocol == "5" else None)

    def _on_subscribe(
        self,
        _c: mqtt.Client,
        _u: Any,
        mid: int,
        reasons: list[ReasonCode],
        _props: Properties | None,
    ) -> None:
        for reason in reasons:
            if reason.is_failure:
                self.stats.alarms += 1
                self._handler.on_alarm("subscribe_refused", str(reason), reason.value)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            parts = self.topics.parse(msg.topic)
        except Exception:
            self._log.warning("unexpected_topic", topic=msg.topic)
            return
        if parts.kind == "receipt":
            self._handler.on_receipt(bytes(msg.payload))
        elif parts.kind == "cmd" and parts.rest:
            self._handler.on_command(parts.rest[0], bytes(msg.payload))
        elif parts.kind == "consult" and self._on_consult is not None:
            self._on_consult(parts.rest, bytes(msg.payload))
