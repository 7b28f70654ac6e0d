"""Runs real node processes (`machikado edge run`) for integration tests, and watches them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.config import load_config
from edge.errors import OutboxError
from edge.outbox import Outbox, OutboxStats
from tests.children import ChildProcess


def write_node_config(
    directory: Path,
    *,
    node: str = "rr-01",
    port: int,
    username: str = "",
    password: str = "",
    rate: float = 200.0,
    count: int = 0,
    resend_after_s: float = 30.0,
    backlog_rate: float = 5000.0,
    protocol: str = "auto",
    extra: str = "",
) -> Path:
    """A node config in ``directory``: a kiosk-kind node whose load is synthetic readings."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{node}.toml"
    path.write_text(
        f"""
[node]
id = "{node}"
kind = "kiosk"
data_dir = "{directory / "data"}"

[mqtt]
host = "127.0.0.1"
port = {port}
username = "{username}"
password = "{password}"
protocol = "{protocol}"
reconnect_min_s = 0.2
reconnect_max_s = 1.0
resend_after_s = {resend_after_s}
backlog_rate = {backlog_rate}
keepalive_s = 5

[outbox]
commit_window_ms = 50

[health]
interval_s = 3600

[simulation]
synthetic_rate = {rate}
synthetic_count = {count}
{extra}
""",
        encoding="utf-8",
    )
    return path


def wait_for(what: str, predicate: Callable[[], bool], timeout: float) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` when it never does."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        pause.wait(0.05)


class NodeProcess(ChildProcess):
    """``python -m machikado.cli edge run --config PATH`` as a child process."""

    what = "node"

    def __init__(
        self, config: Path, *, env: dict[str, str] | None = None, log: Path | None = None
    ) -> None:
        super().__init__(
            log or config.with_suffix(".log"),
            {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.config = config
        saved = os.environ.copy()
        os.environ.update(env or {})
        try:  # the node applies the same MACHIKADO_* overrides
            self.cfg = load_config(config)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def start(self) -> NodeProcess:
        self._spawn(
            [sys.executable, "-m", "machikado.cli", "edge", "run", "--config", str(self.config)]
        )
        wait_for("the node's outbox", self._outbox_ready, 20)
        return self

    def _outbox_ready(self) -> bool:
        self.assert_alive()
        try:
            Outbox.read_stats(self.cfg.outbox_path)
        except OutboxError:
            return False
        return True

    def stats(self) -> OutboxStats:
        return Outbox.read_stats(self.cfg.outbox_path)

    def link(self) -> dict[str, Any]:
        try:
            path = self.cfg.outbox_path.with_name("status.json")
            return dict(json.loads(path.read_text())["link"])
        except (OSError, ValueError, KeyError):
            return {}

    def status_json(self) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "machikado.cli", "edge", "status", "--config", str(self.config)],
            capture_output=True,
            check=True,
            timeout=30,
            env=self.env,
        )
        return dict(json.loads(out.stdout))
