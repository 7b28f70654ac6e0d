"""Receipts a node cannot use, through a real Mosquitto to a real node process: a hostile one is
refused and the node goes on; a sender task that dies takes the watchdog and the node down."""

from __future__ import annotations

import json
import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from protocol import Topics
from protocol.limits import INT64_MAX
from tests.integration.nodes import NodeProcess, wait_for, write_node_config
from tests.services import MosquittoServer, RecordingClient

pytestmark = pytest.mark.integration

NODE = "rr-01"
#: systemd's watchdog interval for the node: it pings every half of it.
WATCHDOG_USEC = "400000"
TIMEOUT_S = 30.0


@contextmanager
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    """A datagram socket standing in for systemd's, and the environment that names it."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(path))
        systemd.settimeout(TIMEOUT_S)
        yield systemd, {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": WATCHDOG_USEC}


def received_so_far(systemd: socket.socket) -> list[bytes]:
    """Every notification already waiting on the socket, without waiting for more."""
    got = []
    systemd.setblocking(False)
    try:
        while True:
            got.append(systemd.recv(256))
    except BlockingIOError:
        return got
    finally:
        systemd.settimeout(TIMEOUT_S)


def publish_receipt(broker: MosquittoServer, stream: str, ranges: list[list[int]]) -> None:
    payload = json.dumps({"v": 1, "stream": stream, "ranges": ranges})
    with RecordingClient(broker) as cloud:
        cloud.publish(Topics().receipt(NODE), payload)


def start_node(
    tmp_path: Path, broker: MosquittoServer, env: dict[str, str], systemd: socket.socket
) -> NodeProcess:
    config = write_node_config(tmp_path, node=NODE, port=broker.port, rate=50)
    node = NodeProcess(config, env=env).start()
    assert systemd.recv(64) == b"READY=1"
    assert systemd.recv(64) == b"WATCHDOG=1"
    wait_for("the node connected", lambda: bool(node.link().get("connected")), TIMEOUT_S)
    wait_for("envelopes in the outbox", lambda: node.stats().last_seq >= 3, TIMEOUT_S)
    return node


def test_receipt_beyond_int64_is_refused_and_the_node_keeps_applying_receipts(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    with notify_socket(tmp_path) as (systemd, env):
        node = start_node(tmp_path, mosquitto, env, systemd)
        try:
            stream = node.stats().stream
            publish_receipt(mosquitto, stream, [[1, 2**64]])
            publish_receipt(mosquitto, stream, [[1, INT64_MAX + 1]])
            wait_for(
                "both receipts refused", lambda: node.link().get("bad_receipts") == 2, TIMEOUT_S
            )
            # The sender is still there: a good receipt after them empties what it covers.
            publish_receipt(mosquitto, stream, [[1, 3]])
            wait_for("seqs 1-3 receipted", lambda: node.stats().receipted > 0, TIMEOUT_S)
            received_so_far(systemd)
            assert systemd.recv(64) == b"WATCHDOG=1"
            assert node.alive()
        finally:
            assert node.terminate() == 0
    refusals = [line for line in node.log.read_text().splitlines() if "bad_receipt" in line]
    assert len(refusals) == 2, refusals
    for line in refusals:
        assert f"node={NODE}" in line, line
        assert f"stream={stream}" in line, line
    assert "Traceback" not in node.log.read_text()


class FailingNodeProcess(NodeProcess):
    """The real ``edge run``, its outbox's receipts raising (tests.integration.failing_node)."""

    def start(self) -> FailingNodeProcess:
        module = "tests.integration.failing_node"
        self._spawn([sys.executable, "-m", module, "edge", "run", "--config", str(self.config)])
        wait_for("the node's outbox", self._outbox_ready, 20)
        return self


def test_sender_task_killed_by_an_unexpected_error_stops_the_watchdog_and_exits_non_zero(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    with notify_socket(tmp_path) as (systemd, env):
        config = write_node_config(tmp_path, node=NODE, port=mosquitto.port, rate=50)
        node = FailingNodeProcess(config, env=env).start()
        assert systemd.recv(64) == b"READY=1"
        assert systemd.recv(64) == b"WATCHDOG=1"
        wait_for("the node connected", lambda: bool(node.link().get("connected")), TIMEOUT_S)
        wait_for("envelopes in the outbox", lambda: node.stats().last_seq >= 1, TIMEOUT_S)

        publish_receipt(mosquitto, node.stats().stream, [[1, 1]])
        assert node.proc is not None
        code = node.proc.wait(TIMEOUT_S)
        after = received_so_far(systemd)

    assert code != 0, node.log_tail()
    statuses = [i for i, m in enumerate(after) if m.startswith(b"STATUS=")]
    assert statuses, after
    assert b"sender" in after[statuses[0]]
    # Nothing fed the watchdog once the sender had died.
    assert b"WATCHDOG=1" not in after[statuses[0] :], after
    log = node.log.read_text()
    assert re.search(r"node_task_failed .*task=sender", log), node.log_tail()
    # What was committed is still in the outbox for the next start.
    assert node.stats().pending_rows >= 1
