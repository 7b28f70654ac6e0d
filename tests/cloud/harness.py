"""Runs the real collector (``machikado cloud collect``) for integration tests, and reads back.

What is here: a fleet manifest and a collector config written for a test, the collector as a
child process (start, SIGKILL, SIGTERM, log tail), the ``cloud`` subcommands it offers
(completeness, dead letters), node fleets of real node processes, and readers for what reached
InfluxDB. Every wait is on a condition with a bounded timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from cloud.deadletter import DeadLetter, DeadLetters
from tests.children import ChildProcess
from tests.integration.nodes import NodeProcess, wait_for, write_node_config
from tests.services import InfluxServer, MosquittoServer

#: The measurements the collector writes besides the readings themselves.
COLLECTOR_MEASUREMENTS = frozenset({"link", "fleet_state"})
#: The one trial of a test fleet; its nodes alternate between two sites.
TRIAL = "chaos-trial"
SITES = ("site-east", "site-west")


def cloud_command() -> list[str]:
    """The argv that runs ``machikado cloud``: the registered subcommand, or the app directly."""
    if any(ep.name == "cloud" for ep in entry_points(group="machikado.commands")):
        return [sys.executable, "-m", "machikado.cli", "cloud"]
    return [sys.executable, "-c", "from cloud.cli import app; app()"]


# -- the fleet manifest and the collector's config --------------------------------------------


@dataclass(frozen=True)
class Fleet:
    """A manifest written for a test: where it is, and each node's (trial, site).

    >>> import pathlib, tempfile
    >>> fleet = write_fleet(pathlib.Path(tempfile.mkdtemp()) / "fleet.toml", ["cx-01", "cx-02"])
    >>> fleet.assignments["cx-02"]
    ('chaos-trial', 'site-west')
    """

    path: Path
    assignments: Mapping[str, tuple[str, str]]

    @property
    def nodes(self) -> list[str]:
        return list(self.assignments)


def write_fleet(
    path: Path,
    nodes: Sequence[str],
    *,
    kind: str = "kiosk",
    budgets: Mapping[str, int] | None = None,
) -> Fleet:
    """A fleet manifest listing ``nodes`` in one trial, alternating between two sites;
    ``budgets`` is its ``[budgets]`` section (every node's budget)."""
    lines = [f'[[trials]]\nid = "{TRIAL}"\nname = "Chaos trial"\n']
    if budgets:
        lines.insert(0, _toml_section("budgets", budgets))
    lines += [f'[[sites]]\nid = "{s}"\nname = "{s}"\ntrial = "{TRIAL}"\n' for s in SITES]
    assignments: dict[str, tuple[str, str]] = {}
    for i, node in enumerate(nodes):
        site = SITES[i % len(SITES)]
        assignments[node] = (TRIAL, site)
        lines.append(
            f'[[nodes]]\nid = "{node}"\nkind = "{kind}"\ntrial = "{TRIAL}"\nsite = "{site}"\n'
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return Fleet(path, assignments)


def influx_store(influx: InfluxServer, database: str = "machikado") -> dict[str, Any]:
    """The ``[store]`` section for the InfluxDB 1.x fixture."""
    return {"kind": "influx_v1", "url": influx.url, "database": database, "timeout_s": 5}


def sqlite_store(path: Path) -> dict[str, Any]:
    """The ``[store]`` section for the embedded SQLite store at ``path``."""
    return {"kind": "sqlite", "path": str(path)}


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    # A JSON string is a valid TOML basic string (same escapes).
    return json.dumps(str(value), ensure_ascii=False)


def _toml_section(name: str, values: Mapping[str, object]) -> str:
    body = "".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items() if v is not None)
    return f"[{name}]\n{body}"


def write_collector_config(
    directory: Path,
    *,
    broker: MosquittoServer,
    store: Mapping[str, Any],
    manifest: Path,
    client_id: str = "machikado-collector",
    username: str = "",
    password: str = "",
    shared_group: str = "",
    unknown_nodes: str = "reject",
    max_points: int = 5000,
    max_delay_ms: int = 200,
    max_inflight: int = 1000,
    retry_initial_s: float = 0.2,
    retry_max_s: float = 2.0,
) -> Path:
    """A collector config in ``directory`` (its dead-letter store beside it); return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{client_id}.toml"
    sections = [
        _toml_section(
            "mqtt",
            {
                "host": broker.host,
                "port": broker.port,
                "client_id": client_id,
                "username": username or None,
                "password": password or None,
                "shared_group": shared_group,
                "keepalive_s": 5,
                "max_inflight": max_inflight,
            },
        ),
        _toml_section("store", store),
        _toml_section("batch", {"max_points": max_points, "max_delay_ms": max_delay_ms}),
        _toml_section("deadletter", {"path": str(directory / f"{client_id}-deadletter.sqlite")}),
        _toml_section("fleet", {"manifest": str(manifest), "unknown_nodes": unknown_nodes}),
        _toml_section("retry", {"initial_s": retry_initial_s, "max_s": retry_max_s}),
    ]
    path.write_text("\n".join(sections), encoding="utf-8")
    return path


# -- the collector process ----------------------------------------------------------------------


class CollectorProcess(ChildProcess):
    """``machikado cloud collect --config PATH`` as a child process.

    With ``broker`` given, :meth:`start` returns once the broker has logged the collector's
    SUBSCRIBE, so nothing a node publishes afterwards can miss its session.

    >>> # c = CollectorProcess(write_collector_config(...), broker=mosquitto).start()
    >>> # c.kill(); c.start()  # SIGKILL, then the same session again
    """

    def __init__(
        self,
        config: Path,
        *,
        broker: MosquittoServer | None = None,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        super().__init__(
            log or config.with_suffix(".log"),
            {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.config = config
        self.broker = broker
        settings = tomllib.loads(config.read_text(encoding="utf-8"))
        mqtt = settings["mqtt"]
        #: Who the broker sees: the client id it sends, or its username on a broker that takes
        #: the username as the client id (as the shipped one does).
        self.client_id: str = mqtt["client_id"]
        if broker is not None and "use_username_as_clientid true" in broker.extra_conf:
            self.client_id = mqtt.get("username") or self.client_id
        self.what = f"collector {self.client_id}"
        self.deadletter_path = Path(settings["deadletter"]["path"])
        self.starts = 0

    def start(self, timeout: float = 30) -> CollectorProcess:
        offset = self._broker_log_size()
        self._spawn([*cloud_command(), "collect", "--config", str(self.config)])
        self.starts += 1
        if self.broker is not None:
            wait_for(
                f"collector {self.client_id} to subscribe",
                lambda: self._subscribed_since(offset),
                timeout,
            )
        return self

    def _broker_log_size(self) -> int:
        if self.broker is None:
            return 0
        try:
            return self.broker.log_path.stat().st_size
        except OSError:
            return 0

    def _subscribed_since(self, offset: int) -> bool:
        self.assert_alive()
        assert self.broker is not None
        with self.broker.log_path.open("rb") as f:
            f.seek(offset)
            return f"Received SUBSCRIBE from {self.client_id}\n".encode() in f.read()

    def dead_letters(self) -> list[DeadLetter]:
        """Every record in the collector's dead-letter store (none when it was never made)."""
        if not self.deadletter_path.exists():
            return []
        with DeadLetters(self.deadletter_path) as store:
            return store.records(limit=1_000_000)


@contextlib.contextmanager
def reaping() -> Iterator[list[Any]]:
    """A list to put child processes in; whatever still runs is killed on the way out.

    A test that fails midway would otherwise leave nodes and collectors running after it.
    """
    children: list[Any] = []
    try:
        yield children
    finally:
        for child in children:
            proc = child.proc
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)


def run_cloud(config: Path, *args: str, timeout: float = 60) -> str:
    """Run ``machikado cloud ARGS --config PATH``; return its stdout, fail on a non-zero exit."""
    done = subprocess.run(
        [*cloud_command(), *args, "--config", str(config)],
        capture_output=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    if done.returncode != 0:
        raise AssertionError(
            f"machikado cloud {' '.join(args)} exited {done.returncode}:\n"
            f"{done.stderr.decode(errors='replace')}"
        )
    return done.stdout.decode()


def completeness(config: Path) -> Any:
    """What ``machikado cloud completeness`` reports, as parsed JSON."""
    return json.loads(run_cloud(config, "completeness"))


# -- node fleets --------------------------------------------------------------------------------


def start_nodes(
    base: Path,
    ids: Iterable[str],
    *,
    port: int,
    rate: float,
    count: int,
    resend_after_s: float = 5.0,
    env: Mapping[str, str] | None = None,
    passwords: Mapping[str, str] | None = None,
) -> list[NodeProcess]:
    """Start one real node process per id, one after the other, each in a dir of its own;
    with ``passwords``, each logs in as its node id with its password from there."""
    nodes = []
    for node in ids:
        config = write_node_config(
            base / node,
            node=node,
            port=port,
            username=node if passwords else "",
            password=passwords[node] if passwords else "",
            rate=rate,
            count=count,
            resend_after_s=resend_after_s,
        )
        nodes.append(NodeProcess(config, env=dict(env or {})).start())
    return nodes


def receipted(nodes: Iterable[NodeProcess]) -> int:
    """Readings the nodes hold receipts for, all together."""
    return sum(n.stats().receipted for n in nodes)


def drained(node: NodeProcess, *, produced: int) -> bool:
    """Whether the node produced ``produced`` readings and holds nothing unreceipted."""
    stats = node.stats()
    return (
        stats.produced >= produced and stats.pending_rows == 0 and stats.receipted == stats.produced
    )


def hold(seconds: float, *checks: Callable[[], None]) -> None:
    """Keep a deliberate outage for ``seconds``, running ``checks`` twice a second meanwhile."""
    end = time.monotonic() + seconds
    tick = threading.Event()
    while time.monotonic() < end:
        for check in checks:
            check()
        tick.wait(0.5)


# -- reading InfluxDB back ----------------------------------------------------------------------


def influx_rows(influx: InfluxServer, db: str, q: str) -> list[dict[str, Any]]:
    """The rows of an InfluxQL query as dicts (times in ns; GROUP BY tags merged into each)."""
    result = influx.query(q, db=db, epoch="ns")
    rows: list[dict[str, Any]] = []
    for statement in result.get("results", []):
        for series in statement.get("series", []):
            tags = series.get("tags") or {}
            for values in series["values"]:
                rows.append({**dict(zip(series["columns"], values, strict=True)), **tags})
    return rows


def influx_measurements(influx: InfluxServer, db: str) -> list[str]:
    return [r["name"] for r in influx_rows(influx, db, "SHOW MEASUREMENTS")]


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class BrokerLog:
    """Counts lines of a Mosquitto log from a mark on, reading only what was added since.

    >>> # log = BrokerLog(mosquitto); log.count(r"Sending PUBLISH to collector-a \\(d\\d, q1")
    """

    def __init__(self, broker: MosquittoServer) -> None:
        self.path = broker.log_path
        self._offset = 0
        self._lines: list[str] = []
        self.mark()

    def mark(self) -> None:
        """Forget what was logged so far: counts start from here."""
        self._offset = self.path.stat().st_size
        self._lines = []

    def _read(self) -> list[str]:
        with self.path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        # Only whole lines; a line still being written is read next time.
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        self._lines += chunk[:end].decode(errors="replace").splitlines()
        return self._lines

    def count(self, pattern: str) -> int:
        """Lines since the mark matching the regex ``pattern``."""
        rx = re.compile(pattern)
        return sum(1 for line in self._read() if rx.search(line))

    def qos1_sent(self, client_id: str) -> int:
        """QoS 1 messages the broker sent to ``client_id`` since the mark (resends included)."""
        return self.count(rf"Sending PUBLISH to {re.escape(client_id)} \(d\d, q1,")

    def data_sent(self, client_id: str) -> int:
        """Data messages the broker sent to ``client_id`` since the mark."""
        return self.count(
            rf"Sending PUBLISH to {re.escape(client_id)} \(d\d, q1, r\d, m\d+, '[^']*/data'"
        )

    def acks_from(self, client_id: str) -> int:
        """PUBACKs ``client_id`` sent the broker since the mark."""
        return self.count(rf"Received PUBACK from {re.escape(client_id)} \(")
