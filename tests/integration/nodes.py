"""Runs real node processes (`machikado edge run`) for integration tests, and watches them."""

from __future__ import annotations

import json
import os
import signal
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


class NodeProcess:
    """``python -m protocol.cli edge run --config PATH`` as a child process."""

    def __init__(
        self, config: Path, *, env: dict[str, str] | None = None, log: Path | None = None
    ) -> None:
        self.config = config
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        saved = os.environ.copy()
        os.environ.update(env or {})
        try:  # the node applies the same MACHIKADO_* overrides
            self.cfg = load_config(config)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self.log = log or config.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NodeProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "protocol.cli", "edge", "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
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

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self) -> None:
        if not self.alive():
            raise AssertionError(f"node exited early:\n{self.log_tail()}")

    def stats(self) -> OutboxStats:
        return Outbox.read_stats(self.cfg.outbox_path)

    def link(self) -> dict[str, Any]:
        try:
            path = self.cfg.outbox_path.with_name("status.json")
            return dict(json.loads(path.read_text())["link"])
        except (OSError, ValueError, KeyError):
            return {}

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM; return the exit status (the node flushes and exits cleanly)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"node ignored SIGTERM:\n{self.log_tail()}") from None

    def status_json(self) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "protocol.cli", "edge", "status", "--config", str(self.config)],
            capture_output=True,
            check=True,
            timeout=30,
            env=self.env,
        )
        return dict(json.loads(out.stdout))

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"
