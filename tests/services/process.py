"""A real service binary run as a child process: find it, start it, wait for it, stop it.

:class:`ServiceProcess` holds what Mosquitto and InfluxDB have in common; each subclass writes its
config, says how to tell that it answers, and how its log reports a port already taken.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import structlog

from tests.services.errors import ServiceError
from tests.services.ports import free_port

log = structlog.get_logger(__name__)

#: Where Debian puts daemons; not on a normal user's PATH.
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
#: How often a waiting loop checks again (the wait doubles as the child's exit check).
_POLL_S = 0.05


def find_binary(name: str, package: str) -> str:
    """The path of a service binary, or a :class:`ServiceError` saying which package to install."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS])
    found = shutil.which(name, path=path)
    if found is None:
        raise ServiceError(
            f"{name} not found on PATH or in {', '.join(_SBIN_DIRS)}: "
            f"install the Debian package {package} (sudo apt-get install {package})"
        )
    return found


def tail(path: Path, n: int) -> str:
    """The last ``n`` lines of a text file, or "" when it does not exist yet."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(lines[-n:])


class PortTaken(ServiceError):
    """The service exited because another process holds its port."""


class ServiceProcess(ABC):
    """One service binary under test control; subclasses give it a config and a readiness check.

    The port stays the same across :meth:`restart`, as a client reconnects to the same address.
    """

    #: A short name for messages and logs: "mosquitto", "influxd".
    name: str = "service"
    #: Seconds :meth:`start` waits for the service to answer.
    start_timeout_s: float = 10.0
    #: Seconds :meth:`stop` waits after SIGTERM before it gives up with SIGKILL.
    stop_timeout_s: float = 10.0
    host = "127.0.0.1"

    def __init__(self, tmp_dir: Path, *, port: int | None) -> None:
        self.tmp_dir = Path(tmp_dir)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._port_fixed = port is not None
        self._port = port if port is not None else free_port(self.host)
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._started_once = False

    # -- what a subclass provides -------------------------------------------------------------

    @property
    @abstractmethod
    def log_path(self) -> Path:
        """The service's own log file."""

    @property
    def output_path(self) -> Path:
        """Where the child's stdout and stderr go (errors before its log is open land here)."""
        return self.tmp_dir / f"{self.name}.out"

    @abstractmethod
    def _write_config(self) -> list[str]:
        """Write the config for the current ports; return the command line to run."""

    @abstractmethod
    def _answers(self) -> bool:
        """Whether the running service answers a real request."""

    def _pick_new_ports(self) -> None:
        """Choose fresh ports after a clash (subclasses with more than one port extend this)."""
        self._port = free_port(self.host)

    # -- public -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def log_tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the service's log."""
        return tail(self.log_path, n)

    def start(self) -> None:
        """Start the service and wait until it answers; raise :class:`ServiceError` if it does not.

        On the first start with a port chosen here, a port taken meanwhile by another process is
        replaced by a fresh one; on a restart the port is kept, or the start fails.
        """
        if self.is_running:
            raise ServiceError(f"{self.name} on port {self._port} is already running")
        self._forget()  # a process that died by itself leaves its output file open
        attempts = 1 if (self._port_fixed or self._started_once) else 3
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
            except PortTaken:
                if attempt == attempts:
                    raise
                log.info("service_port_taken", service=self.name, port=self._port)
                self._pick_new_ports()
                continue
            self._started_once = True
            log.info("service_started", service=self.name, port=self._port, pid=self.pid)
            return

    def stop(self) -> None:
        """Stop with SIGTERM, as systemd would, and wait; idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self._forget()
                raise ServiceError(
                    f"{self.name} on port {self._port} did not stop within "
                    f"{self.stop_timeout_s:g} s of SIGTERM; killed it\n{self._tails()}"
                ) from None
        log.info("service_stopped", service=self.name, port=self._port, code=proc.returncode)
        self._forget()

    def kill(self) -> None:
        """Kill with SIGKILL, as a power cut would: nothing is saved on the way out."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.info("service_killed", service=self.name, port=self._port)
        self._forget()

    def restart(self) -> None:
        """Stop, then start again on the same port with the same data."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- inside -------------------------------------------------------------------------------

    def _start_once(self) -> None:
        argv = self._write_config()
        self._output = self.output_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                cwd=self.tmp_dir,
            )
        except OSError as exc:
            self._forget()
            raise ServiceError(f"{self.name}: cannot run {argv[0]}: {exc}") from None
        try:
            self._wait_until(self._answers, what="answer")
        except BaseException:
            self.kill()
            raise

    def _wait_until(self, ready: Callable[[], bool], *, what: str) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if proc.poll() is not None:
                self._raise_exited(proc.returncode)
            if ready():
                return
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{self.name} on port {self._port} did not {what} within "
                    f"{self.start_timeout_s:g} s\n{self._tails()}"
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=_POLL_S)

    def _raise_exited(self, code: int) -> None:
        tails = self._tails()
        if "address already in use" in tails.lower():
            raise PortTaken(f"{self.name}: port {self._port} is taken\n{tails}")
        raise ServiceError(f"{self.name} on port {self._port} exited with code {code}\n{tails}")

    def _tails(self, n: int = 30) -> str:
        parts = [
            f"--- {path} (last {n} lines) ---\n{text}"
            for path in (self.output_path, self.log_path)
            if (text := tail(path, n))
        ]
        return "\n".join(parts) or "(the service wrote no output)"

    def _forget(self) -> None:
        self._proc = None
        if self._output is not None:
            self._output.close()
            self._output = None
