"""Under systemd (Type=notify, WatchdogSec) the node says READY=1, then keeps the watchdog fed."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.integration.nodes import NodeProcess, write_node_config
from tests.services import MosquittoServer

pytestmark = pytest.mark.integration


def test_node_notifies_ready_and_feeds_the_watchdog(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(path))
        systemd.settimeout(20)
        env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}
        node = NodeProcess(write_node_config(tmp_path, port=mosquitto.port, rate=5), env=env)
        node.start()
        try:
            got = [systemd.recv(64) for _ in range(3)]
        finally:
            assert node.terminate() == 0
    assert got == [b"READY=1", b"WATCHDOG=1", b"WATCHDOG=1"]
