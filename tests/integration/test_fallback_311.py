"""A node with ``protocol = "auto"`` speaks whatever the broker speaks, by itself.

Against amqtt (MQTT 3.1.1 only, the demo's embedded broker), which does not answer an MQTT 5
CONNECT that carries a will, the node falls back to 3.1.1 and loses nothing; against the real
Mosquitto it stays on MQTT 5.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest
from paho.mqtt.reasoncodes import ReasonCode

import edge.link
from edge.config import MqttSection
from edge.demo import embedded_broker
from edge.link import MqttLink
from edge.standin import ReceiptStandin
from tests.integration.nodes import NodeProcess, wait_for, write_node_config
from tests.services import MosquittoServer, free_port

pytestmark = pytest.mark.integration


class AmqttThread:
    """The demo's embedded amqtt broker, on an event loop of its own in a thread."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="amqtt", daemon=True)

    def _run(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                async with embedded_broker(self.port, self.host):
                    self._ready.set()
                    await self._stop.wait()
            except BaseException as exc:
                self._error = exc
                self._ready.set()

        asyncio.run(serve())

    def start(self) -> AmqttThread:
        self._thread.start()
        assert self._ready.wait(20), "amqtt did not start within 20 s"
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        assert not self._thread.is_alive(), "amqtt did not stop within 20 s"


@pytest.fixture
def amqtt_broker() -> Iterator[AmqttThread]:
    broker = AmqttThread().start()
    yield broker
    broker.stop()


def delivered_everything(node: NodeProcess, cloud: ReceiptStandin) -> bool:
    stats = node.stats()
    return (
        stats.last_seq > 0
        and cloud.seqs(node.cfg.node.id, stats.stream) >= set(range(1, stats.last_seq + 1))
        and stats.pending_rows == 0
    )


def test_auto_node_falls_back_to_311_on_amqtt_and_loses_nothing(
    amqtt_broker: AmqttThread, tmp_path: Path
) -> None:
    count = 500
    node = NodeProcess(
        write_node_config(
            tmp_path,
            port=amqtt_broker.port,
            rate=100,
            count=count,
            protocol="auto",
            resend_after_s=5,
        )
    )
    with ReceiptStandin(amqtt_broker.host, amqtt_broker.port, protocol="3.1.1") as cloud:
        node.start()
        # The first MQTT 5 CONNECT goes unanswered for CONNACK_TIMEOUT_S before the fallback.
        wait_for("all readings produced", lambda: node.stats().produced >= count, 90)
        wait_for("outbox drained", lambda: delivered_everything(node, cloud), 120)
        # The status file is rewritten every tick: the drain can finish within the tick of the
        # 3.1.1 connect, before the file says so.
        wait_for("status shows the 3.1.1 link", lambda: node.link().get("protocol") == "3.1.1", 10)
        link = node.link()
        assert node.terminate() == 0
    stats = node.stats()
    assert cloud.seqs("rr-01", stats.stream) == set(range(1, stats.last_seq + 1))
    assert stats.receipted == stats.produced >= count
    assert stats.pending_rows == 0
    assert not cloud.invalid
    assert link["protocol"] == "3.1.1"
    assert link["connected"] is True


def test_auto_node_stays_on_mqtt5_with_mosquitto(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    count = 200
    node = NodeProcess(
        write_node_config(tmp_path, port=mosquitto.port, rate=100, count=count, protocol="auto")
    )
    with ReceiptStandin(mosquitto.host, mosquitto.port) as cloud:
        node.start()
        wait_for("all readings produced", lambda: node.stats().produced >= count, 60)
        wait_for("outbox drained", lambda: delivered_everything(node, cloud), 60)
        wait_for("status shows the MQTT 5 link", lambda: node.link().get("protocol") == "5", 10)
        link = node.link()
        assert node.terminate() == 0
    assert link["protocol"] == "5"
    assert link["connect_failures"] == 0
    stats = node.stats()
    assert stats.receipted == stats.produced >= count


# ------------------------------------------------------------ the link against a scripted broker
class ScriptedBroker:
    """A TCP server that reads each CONNECT's protocol level and answers as ``script`` says.

    ``script(level, attempt)`` returns "accept", "accept-then-close", "refuse" (CONNACK return
    code 1, then close), "silent" (keep the socket open, never answer) or "close" (close
    without a word). Accepted sessions get their QoS 1 publishes acknowledged.
    """

    def __init__(self, script: Callable[[int, int], str]) -> None:
        self.script = script
        self.levels: list[int] = []
        self.changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> ScriptedBroker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            _kind, body = await read_packet(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        level = body[6]  # after the length-prefixed protocol name "MQTT"
        self.levels.append(level)
        self.changed.set()
        action = self.script(level, len(self.levels))
        if action in ("accept", "accept-then-close"):
            # MQTT 5's CONNACK carries a properties length, 3.1.1's does not.
            writer.write(b"\x20\x03\x00\x00\x00" if level == 5 else b"\x20\x02\x00\x00")
        elif action == "refuse":
            writer.write(b"\x20\x02\x00\x01")
        if action in ("refuse", "close", "accept-then-close"):
            await writer.drain()
            writer.close()
            return
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                kind, body = await read_packet(reader)
                if kind >> 4 == 3 and kind & 0x06:  # a PUBLISH with QoS 1: acknowledge it
                    topic_len = int.from_bytes(body[:2], "big")
                    writer.write(b"\x40\x02" + body[2 + topic_len : 4 + topic_len])
                elif kind >> 4 == 14:  # DISCONNECT
                    writer.close()
                    return


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One MQTT packet: its fixed header byte and its body."""
    kind = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return kind, await reader.readexactly(length)


class QuietHandler:
    """A link handler that only remembers whether the link is up."""

    def __init__(self) -> None:
        self.up = asyncio.Event()

    def on_connected(self) -> None:
        self.up.set()

    def on_disconnected(self) -> None:
        self.up.clear()

    def on_ack(self, mid: int, reason: ReasonCode | None) -> None: ...
    def on_receipt(self, payload: bytes) -> None: ...
    def on_command(self, name: str, payload: bytes) -> None: ...
    def on_alarm(self, kind: str, detail: str, code: int) -> None: ...


async def run_link(
    script: Callable[[int, int], str],
    until: Callable[[ScriptedBroker, QuietHandler], bool],
    protocol: Literal["auto", "5", "3.1.1"] = "auto",
) -> tuple[list[int], MqttLink]:
    """Run a node's link against a scripted broker until ``until`` holds (30 s at most)."""
    async with ScriptedBroker(script) as broker:
        settings = MqttSection(
            host="127.0.0.1",
            port=broker.port,
            protocol=protocol,
            keepalive_s=5,
            reconnect_min_s=0.05,
            reconnect_max_s=0.2,
        )
        handler = QuietHandler()
        link = MqttLink(
            settings, node="rr-01", username="rr-01", birth=lambda: b"{}", handler=handler
        )
        stop = asyncio.Event()
        task = asyncio.create_task(link.run(stop))
        try:
            async with asyncio.timeout(30):
                while not until(broker, handler):
                    # Woken by each CONNECT; the short bound catches the link coming up.
                    broker.changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(broker.changed.wait(), 0.05)
        finally:
            stop.set()
            await task
        return broker.levels, link


def test_link_falls_back_when_broker_refuses_mqtt5() -> None:
    levels, link = asyncio.run(
        run_link(
            lambda level, _n: "refuse" if level == 5 else "accept",
            lambda _b, h: h.up.is_set(),
        )
    )
    assert levels == [5, 4]
    assert link.stats.protocol == "3.1.1"


def test_link_falls_back_when_mqtt5_connect_goes_unanswered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(edge.link, "CONNACK_TIMEOUT_S", 0.3)
    levels, link = asyncio.run(
        run_link(
            lambda level, _n: "silent" if level == 5 else "accept",
            lambda _b, h: h.up.is_set(),
        )
    )
    assert levels == [5, 4]
    assert link.stats.protocol == "3.1.1"


def test_link_falls_back_when_mqtt5_connect_is_closed_unanswered() -> None:
    levels, link = asyncio.run(
        run_link(
            lambda level, _n: "close" if level == 5 else "accept",
            lambda _b, h: h.up.is_set(),
        )
    )
    assert levels == [5, 4]
    assert link.stats.protocol == "3.1.1"


def test_link_asks_with_mqtt5_again_when_311_goes_unanswered_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(edge.link, "CONNACK_TIMEOUT_S", 0.3)
    levels, _link = asyncio.run(
        run_link(
            lambda _level, n: "close" if n == 2 else "silent", lambda b, _h: len(b.levels) >= 3
        )
    )
    assert levels[:3] == [5, 4, 5]


def test_link_keeps_mqtt5_once_it_worked_whatever_silence_follows() -> None:
    levels, link = asyncio.run(
        run_link(
            lambda _level, n: {1: "accept-then-close", 4: "accept"}.get(n, "close"),
            lambda b, h: len(b.levels) >= 4 and h.up.is_set(),
        )
    )
    assert levels[:4] == [5, 5, 5, 5]
    assert link.stats.protocol == "5"


def test_link_configured_for_mqtt5_never_falls_back() -> None:
    levels, _link = asyncio.run(
        run_link(lambda _level, _n: "refuse", lambda b, _h: len(b.levels) >= 3, protocol="5")
    )
    assert levels[:3] == [5, 5, 5]
