"""``machikado demo``: the whole system on embedded defaults, and a live view of it.

An amqtt broker on 127.0.0.1 in this process; the real collector (``machikado cloud collect``)
as a child process, writing into SQLite under the state dir; the kiosk as a child process when a
display is there (or ``--kiosk``); and a handful of simulated restroom, vehicle and station
nodes, each a :class:`~edge.runtime.NodeRuntime` with its own outbox, on this process's loop.
amqtt speaks MQTT 3.1.1 only, so nodes, kiosk and collector are configured for it.

``edge`` does not import ``cloud`` or ``kiosk``: the demo writes their configs (a collector
config and a fleet manifest that lists every demo node, a kiosk config from
``nodes/kiosk-sim.toml``), starts them with the running Python, and learns what the cloud
stored from the status file the collector rewrites every second (``cloud/status.json``).

The nodes are built from ``firmware_config/nodes/*-sim.toml`` with ids from
``firmware_config/fleet.toml`` while it has enough of a kind. Their world runs ``--speed`` times
faster than the wall clock, and so do their reporting intervals, so things happen within
seconds. Logs go to ``<state-dir>/demo.log``, ``collector.log`` and ``kiosk.log``; the terminal
shows the live table. Ctrl-C or SIGTERM stops the nodes, the kiosk, the collector (it drains
into the store), the broker, in that order, and prints the summary.

Example::

    machikado demo                               # Ctrl-C stops everything and prints a summary
    machikado demo --nodes 24 --duration 60 --no-live --no-kiosk --state-dir /tmp/demo --fresh
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import structlog
import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from edge.config import NodeConfig
from edge.errors import ConfigError, EdgeError, OutboxError
from edge.outbox import Outbox
from edge.runtime import NodeRuntime
from protocol import Reading

log = structlog.get_logger(__name__)

HOST = "127.0.0.1"
#: The kinds the demo runs, in the order ``--nodes`` deals them out (8 gives 3, 3, 2).
KINDS = ("restroom", "vehicle", "station")
#: Id prefixes for nodes beyond what the fleet manifest lists.
ID_PREFIX = {"restroom": "rr", "vehicle": "mv", "station": "st"}
#: Wall-clock intervals are divided by the speed, but never below this.
MIN_INTERVAL_S = 1.0
#: Intervals of the sample configs that are scenario time, so they shrink with ``--speed``.
SCALED_INTERVALS = {
    "health": ("interval_s",),
    "restroom": ("occupancy_interval_s",),
    "mobility": ("trip_idle_s", "sample_interval_s"),
    "station": ("report_interval_s", "stale_after_s"),
}
#: Marks a state dir as the demo's, so that ``--fresh`` never wipes anything else.
MARKER = ".machikado-demo"
#: Pending readings older than this are a backlog (yellow).
BACKLOG_AGE_S = 5.0
#: How often ``--no-live`` prints its summary line.
SUMMARY_EVERY_S = 5.0
#: The kiosk's sample config in ``nodes/``.
KIOSK_SAMPLE = "kiosk-sim.toml"
#: How long the collector may take to subscribe (a loaded machine starts Python slowly).
COLLECTOR_START_S = 60.0
#: The collector's ``drain_timeout_s``: how long it retries the store after SIGTERM.
COLLECTOR_DRAIN_S = 10.0
#: Beyond its drain, how long the collector may take to end before it is killed.
COLLECTOR_STOP_S = 20.0
#: How long the kiosk may take to close its window and flush its outbox.
KIOSK_STOP_S = 30.0
#: How long the web app may take to finish its requests and end.
WEB_STOP_S = 10.0
#: A status file older than this means the collector is stuck: shown as down.
STATUS_STALE_S = 5.0

app = typer.Typer(help="Run a demo: broker, collector, kiosk, simulated nodes and a live view.")


class _DemoNodeConfig(NodeConfig):
    """A node config from the sample files only: no MACHIKADO_* environment overrides.

    The environment is meant for one real node; it must not move the demo's nodes to another
    broker or data dir.
    """

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


# ---------------------------------------------------------------------------- planning nodes
def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"demo: cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"demo: {path} is not valid TOML: {exc}") from None


def fleet_nodes(fleet: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The fleet manifest's nodes by kind, in file order.

    >>> fleet_nodes({"nodes": [{"id": "rr-01", "kind": "restroom"}]})["restroom"][0]["id"]
    'rr-01'
    """
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for entry in fleet.get("nodes", []):
        if isinstance(entry, dict) and "id" in entry and "kind" in entry:
            by_kind.setdefault(str(entry["kind"]), []).append(entry)
    return by_kind


def deal_kinds(count: int) -> dict[str, int]:
    """How many nodes of each kind ``count`` nodes are: dealt round-robin.

    >>> deal_kinds(8)
    {'restroom': 3, 'vehicle': 3, 'station': 2}
    """
    dealt = dict.fromkeys(KINDS, 0)
    for kind in itertools.islice(itertools.cycle(KINDS), count):
        dealt[kind] += 1
    return dealt


def plan_nodes(
    config_dir: Path,
    state_dir: Path,
    *,
    count: int,
    port: int,
    speed: float,
) -> list[NodeConfig]:
    """The demo's node configs: sample config per kind, fleet ids, own data dir, sped up.

    >>> # plan_nodes(Path("firmware_config"), Path("var/demo"), count=8, port=1883, speed=30)
    """
    if count < 1:
        raise ConfigError(f"demo: --nodes must be at least 1, not {count}")
    fleet = fleet_nodes(_read_toml(config_dir / "fleet.toml"))
    configs: list[NodeConfig] = []
    for kind, n in deal_kinds(count).items():
        if n == 0:
            continue
        sample_path = config_dir / "nodes" / f"{kind}-sim.toml"
        sample = _read_toml(sample_path)
        known = fleet.get(kind, [])
        for i in range(n):
            entry = known[i] if i < len(known) else {"id": f"{ID_PREFIX[kind]}-{i + 1:02d}"}
            data = _node_data(sample, entry, index=i, state_dir=state_dir, port=port, speed=speed)
            configs.append(_validate(data, sample_path))
    ids = [c.node.id for c in configs]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"demo: node ids are not unique: {sorted(ids)}")
    return configs


def _node_data(
    sample: dict[str, Any],
    entry: dict[str, Any],
    *,
    index: int,
    state_dir: Path,
    port: int,
    speed: float,
) -> dict[str, Any]:
    data = copy.deepcopy(sample)
    node_id = str(entry["id"])

    def section(name: str) -> dict[str, Any]:
        got = data.setdefault(name, {})
        if not isinstance(got, dict):
            raise ConfigError(f"demo: [{name}] of the {entry.get('kind')} sample is not a table")
        return got

    node_dir = state_dir / node_id
    section("node").update(id=node_id, data_dir=str(node_dir))
    section("outbox")["path"] = str(node_dir / "outbox.sqlite")
    # amqtt speaks MQTT 3.1.1 only; "auto" would find that out too, after a CONNACK timeout.
    section("mqtt").update(
        host=HOST, port=port, protocol="3.1.1", reconnect_min_s=0.5, reconnect_max_s=5.0
    )
    section("gpio")["pin_factory"] = "mock"
    section("ble")["backend"] = "simulated"
    sim = section("simulation")
    sim.update(enabled=True, speed=speed, seed=int(sim.get("seed", 1)) * 100 + index)
    for name, keys in SCALED_INTERVALS.items():
        if name not in data:
            continue
        sec = section(name)
        for key in keys:
            if isinstance(sec.get(key), int | float):
                sec[key] = max(MIN_INTERVAL_S, float(sec[key]) / speed)
    if section("node").get("kind") == "vehicle":
        mob = section("mobility")
        mob["vehicle_id"] = int(entry.get("vehicle_id", 1000 + index + 1))
        # Each vehicle's own (simulated) sensor hub.
        mob["gatt_address"] = f"C0:FF:EE:00:10:{index + 1:02X}"
    return data


def _validate(data: dict[str, Any], sample_path: Path) -> NodeConfig:
    try:
        return _DemoNodeConfig(**data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            key = ".".join(str(p) for p in err["loc"])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{key}: {msg.removeprefix('Value error, ')}")
        raise ConfigError(f"demo: config {sample_path}: " + "; ".join(problems)) from None


def default_config_dir() -> Path:
    """``firmware_config/`` of the source tree this package runs from, else of the cwd."""
    beside = Path(__file__).resolve().parent.parent / "firmware_config"
    return beside if beside.is_dir() else Path("firmware_config")


def prepare_state_dir(state_dir: Path, *, fresh: bool) -> None:
    """Create the state dir; with ``fresh``, wipe it first, but only if it is a demo's."""
    if fresh and state_dir.exists():
        is_demo = (state_dir / MARKER).is_file() or not any(state_dir.iterdir())
        if not is_demo:
            raise EdgeError(
                f"demo: --fresh will not wipe {state_dir}: it has no {MARKER} file, so it is "
                "not a demo state dir"
            )
        shutil.rmtree(state_dir)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / MARKER).touch()
    except OSError as exc:
        raise EdgeError(f"demo: cannot use state dir {state_dir}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------- planning cloud, kiosk
def toml_text(data: Mapping[str, Any]) -> str:
    """``data`` as TOML: top-level tables of strings, numbers, booleans and lists of them.

    Enough for the configs the demo writes; strings are JSON-quoted, which TOML reads as is.

    >>> print(toml_text({"mqtt": {"host": "127.0.0.1", "port": 1883, "tls": False}}), end="")
    [mqtt]
    host = "127.0.0.1"
    port = 1883
    tls = false
    """

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str | Path):
            return json.dumps(str(v), ensure_ascii=False)
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise ConfigError(f"demo: cannot write {v!r} as TOML")

    lines: list[str] = []
    for name, table in data.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"demo: [{name}] is not a table")
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {value(v)}" for k, v in table.items())
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def manifest_text(fleet_path: Path, node_ids: Mapping[str, str]) -> tuple[str, list[str]]:
    """The fleet manifest plus ``[[nodes]]`` for demo nodes it lacks; the ids it could not place.

    ``node_ids`` maps id to kind. An added node takes the trial and site of the manifest's last
    node of its kind; an id of a kind the manifest has no node of is returned instead.
    """
    text = fleet_path.read_text(encoding="utf-8")
    by_kind = fleet_nodes(_read_toml(fleet_path))
    listed = {str(e["id"]) for entries in by_kind.values() for e in entries}
    added, unplaced = [], []
    for node_id, kind in node_ids.items():
        if node_id in listed:
            continue
        like = by_kind.get(kind)
        if not like or "trial" not in like[-1] or "site" not in like[-1]:
            unplaced.append(node_id)
            continue
        entry = {"id": node_id, "kind": kind, "trial": like[-1]["trial"], "site": like[-1]["site"]}
        added.append("[[nodes]]\n" + toml_text({"x": entry}).split("\n", 1)[1])
    if added:
        text = text.rstrip("\n") + "\n\n# --- added by machikado demo for its extra nodes ---\n\n"
        text += "\n".join(added)
    return text, unplaced


@dataclass(frozen=True)
class CloudPlan:
    """Where the demo's collector keeps its config, manifest, store, dead letters and status."""

    config: Path
    manifest: Path
    store: Path
    deadletter: Path
    status: Path
    log: Path


def plan_cloud(
    config_dir: Path, state_dir: Path, *, port: int, node_ids: Mapping[str, str]
) -> CloudPlan:
    """Write the collector's config and demo manifest under ``<state-dir>/cloud``."""
    cloud = state_dir.resolve() / "cloud"
    cloud.mkdir(parents=True, exist_ok=True)
    plan = CloudPlan(
        config=cloud / "collector.toml",
        manifest=cloud / "fleet.toml",
        store=cloud / "store.sqlite",
        deadletter=cloud / "deadletter.sqlite",
        status=cloud / "status.json",
        log=state_dir.resolve() / "collector.log",
    )
    manifest, unplaced = manifest_text(config_dir / "fleet.toml", node_ids)
    plan.manifest.write_text(manifest, encoding="utf-8")
    config = {
        # amqtt speaks 3.1.1 only; the collector then bounds what it holds by itself.
        "mqtt": {
            "host": HOST,
            "port": port,
            "protocol": "3.1.1",
            "client_id": "machikado-demo-collector",
            "reconnect_min_s": 0.5,
            "reconnect_max_s": 2.0,
        },
        "store": {"kind": "sqlite", "path": plan.store},
        "deadletter": {"path": plan.deadletter},
        # A node the manifest cannot place still shows in the demo, as "unassigned".
        "fleet": {"manifest": plan.manifest, "unknown_nodes": "accept" if unplaced else "reject"},
        "batch": {"drain_timeout_s": COLLECTOR_DRAIN_S, "summary_interval_s": 10.0},
        "status": {"path": plan.status, "interval_s": 1.0},
    }
    plan.config.write_text(toml_text(config), encoding="utf-8")
    return plan


@dataclass(frozen=True)
class WebPlan:
    """The demo's web app: its config, where the demo login's password is, its address."""

    config: Path
    password_file: Path
    url: str
    log: Path
    user: str = "demo"


def plan_web(state_dir: Path, cloud: CloudPlan, *, port: int) -> WebPlan:
    """Write the web app's config under ``<state-dir>/cloud``: it reads the collector's store
    and manifest; its own database sits beside them. The demo login's password is a new random
    one in a file of mode 0600."""
    directory = cloud.config.parent
    plan = WebPlan(
        config=directory / "web.toml",
        password_file=directory / "web-password",
        url=f"http://{HOST}:{port}/",
        log=state_dir.resolve() / "web.log",
    )
    config = {
        "web": {"host": HOST, "port": port, "refresh_s": 5},
        "database": {"url": f"sqlite:///{directory / 'web.sqlite'}"},
        "store": {"kind": "sqlite", "path": cloud.store},
        "fleet": {"manifest": cloud.manifest},
    }
    plan.config.write_text(toml_text(config), encoding="utf-8")
    plan.password_file.unlink(missing_ok=True)
    fd = os.open(plan.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_urlsafe(12) + "\n")
    return plan


def web_command(plan: WebPlan) -> list[str]:
    """``machikado cloud web`` on the demo's config, by the running Python."""
    return [
        *(sys.executable, "-m", "machikado.cli", "--log-level", "info"),
        *("cloud", "web", "--config", str(plan.config)),
    ]


async def add_demo_login(plan: WebPlan) -> None:
    """Make the demo's admin account (its database is new with the state dir)."""
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "machikado.cli", "cloud", "web", "adduser", plan.user),
        *("--config", str(plan.config), "--role", "admin", "--display-name", "Demo admin"),
        *("--password-file", str(plan.password_file)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=child_env(),
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0 and b"exists already" not in out:
        raise EdgeError(f"demo: cannot make the web login: {out.decode(errors='replace').strip()}")


def plan_kiosk(config_dir: Path, state_dir: Path, *, port: int) -> tuple[str, Path]:
    """The kiosk's id and its config, written from the sample and pointed at the demo broker."""
    sample_path = config_dir / "nodes" / KIOSK_SAMPLE
    data = _read_toml(sample_path)
    node = data.setdefault("node", {})
    node_id = str(node.get("id", "ks-01"))
    node_dir = state_dir.resolve() / node_id
    node["data_dir"] = str(node_dir)
    data.setdefault("outbox", {})["path"] = str(node_dir / "outbox.sqlite")
    data.setdefault("mqtt", {}).update(host=HOST, port=port, protocol="3.1.1")
    path = state_dir.resolve() / "kiosk.toml"
    path.write_text(toml_text(data), encoding="utf-8")
    return node_id, path


def kiosk_wanted(flag: bool | None, environ: Mapping[str, str]) -> tuple[bool, str]:
    """Whether the demo starts the kiosk, and why (for the view's footer).

    >>> kiosk_wanted(None, {})
    (False, 'off: no display (--kiosk starts it anyway)')
    >>> kiosk_wanted(None, {"DISPLAY": ":0"})[0], kiosk_wanted(False, {"DISPLAY": ":0"})[0]
    (True, False)
    """
    if flag is True:
        return True, "--kiosk"
    if flag is False:
        return False, "off: --no-kiosk"
    for var in ("DISPLAY", "WAYLAND_DISPLAY"):
        if environ.get(var):
            return True, f"{var} is set"
    return False, "off: no display (--kiosk starts it anyway)"


def child_env(**extra: str) -> dict[str, str]:
    """The environment for the collector and the kiosk: no MACHIKADO_* overrides.

    Those are meant for one real node or collector; they must not move the demo's to another
    broker or store.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACHIKADO_")}
    for key, val in extra.items():
        env.setdefault(key, val)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ----------------------------------------------------------------------------- the services
def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (someone may take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(port: int, host: str = HOST) -> bool:
    """Whether ``port`` on ``host`` can be listened on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@asynccontextmanager
async def embedded_broker(port: int, host: str = HOST) -> AsyncIterator[Any]:
    """An amqtt broker on ``host:port`` on the running loop, anonymous, MQTT 3.1.1.

    >>> # async with embedded_broker(1883) as broker: ...
    """
    from amqtt.broker import Broker
    from amqtt.errors import BrokerError

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    try:
        await broker.start()
    except BrokerError as exc:
        cause = exc.__cause__
        why = (cause.strerror if isinstance(cause, OSError) else None) or str(cause or exc)
        raise EdgeError(f"demo: cannot start the broker on {host}:{port}: {why}") from None
    log.info("demo_broker_started", address=f"{host}:{port}")
    try:
        yield broker
    finally:
        with contextlib.suppress(Exception):
            await broker.shutdown()
        log.info("demo_broker_stopped", address=f"{host}:{port}")


class DemoNode(NodeRuntime):
    """A node runtime that also remembers its last reading, for the live view.

    >>> # node = DemoNode(config); asyncio.create_task(node.run(stop)); node.last_reading
    """

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        self.last_reading: Reading | None = None
        self.last_reading_mono = 0.0

    def emit(self, reading: Reading, *, urgent: bool = False) -> None:
        self.last_reading = reading
        self.last_reading_mono = time.monotonic()
        super().emit(reading, urgent=urgent)


class Child:
    """A process the demo runs beside itself (the collector, the kiosk), its output in a log.

    >>> # child = Child("collector", [sys.executable, "-m", ...], log=Path("collector.log"))
    >>> # child.start(env); ...; await child.stop(grace_s=30)
    """

    def __init__(self, name: str, cmd: Sequence[str], *, log_path: Path) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def start(self, env: Mapping[str, str]) -> None:
        with self.log_path.open("ab") as out:
            try:
                # A process group of its own: Ctrl-C in the terminal reaches only the demo,
                # which stops the children in order (nodes first, collector last).
                self.proc = subprocess.Popen(
                    self.cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    env=dict(env),
                    process_group=0,
                )
            except OSError as exc:
                raise EdgeError(
                    f"demo: cannot start the {self.name}: {exc.strerror or exc}"
                ) from None
        log.info("demo_child_started", child=self.name, pid=self.proc.pid)

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_status(self) -> int | None:
        """Its exit status once it ended, else None."""
        return None if self.proc is None else self.proc.poll()

    def last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return next((line.strip() for line in reversed(lines) if line.strip()), "")

    async def stop(self, *, grace_s: float) -> int | None:
        """SIGTERM, wait up to ``grace_s`` for it to finish its own way, then SIGKILL."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, grace_s)
            except subprocess.TimeoutExpired:
                log.warning("demo_child_killed", child=self.name, pid=proc.pid, waited_s=grace_s)
                proc.kill()
                await asyncio.to_thread(proc.wait)
        self.returncode = proc.returncode
        log.info("demo_child_stopped", child=self.name, pid=proc.pid, status=proc.returncode)
        return proc.returncode


def collector_command(plan: CloudPlan) -> list[str]:
    """``machikado cloud collect`` on the demo's config, by the running Python."""
    return [
        *(sys.executable, "-m", "machikado.cli", "--log-level", "info"),
        *("cloud", "collect", "--config", str(plan.config)),
    ]


def kiosk_command(config: Path) -> list[str]:
    """``machikado kiosk`` on the demo's kiosk config, by the running Python."""
    return [sys.executable, "-m", "machikado.cli", "kiosk", "--config", str(config)]


def read_status(path: Path) -> dict[str, Any] | None:
    """The collector's status file (see ``cloud.collector.status``), or None while it has none.

    The collector replaces it in one rename, so it is whole or absent, never half written.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


async def wait_for_collector(
    child: Child, status_path: Path, *, stop: asyncio.Event, within_s: float
) -> None:
    """Return once the collector's status says it is subscribed (or ``stop`` is set); an
    EdgeError if it ends first or takes longer than ``within_s``."""
    deadline = time.monotonic() + within_s
    while not stop.is_set():
        status = read_status(status_path)
        if status is not None and status.get("collector", {}).get("subscribed"):
            return
        code = child.exit_status()
        if code is not None:
            raise EdgeError(
                f"demo: the collector exited with status {code} at start "
                f"({child.last_log_line() or 'no output'}); see {child.log_path}"
            )
        if time.monotonic() >= deadline:
            raise EdgeError(
                f"demo: the collector did not subscribe within {within_s:g} s; see {child.log_path}"
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


# ------------------------------------------------------------------------------ the view
@dataclass(frozen=True)
class NodeRow:
    """One node's line of the view, and of ``summary.json``.

    ``stored`` (readings) and ``missing`` (seqs) are what the cloud's store holds of the node,
    from the collector's status file; None while the store has nothing of it.
    """

    node: str
    kind: str
    connected: bool
    connects: int
    protocol: str
    produced: int
    sent: int
    receipted: int
    stored: int | None
    missing: int | None
    pending_rows: int
    pending_readings: int
    oldest_pending_age_s: float | None
    dropped: int
    last_reading: str
    last_reading_age_s: float | None
    alarms: int


@dataclass(frozen=True)
class CloudState:
    """The collector and the kiosk as the footer shows them.

    ``collector`` is "starting", "up" (connected, status fresh), "down" (running but not
    connected, or its status is stale) or "stopped"; the numbers are from its status file.
    """

    collector: str
    collector_pid: int | None
    messages_per_s: float
    received: int
    dead_letters: int
    store: str
    store_error: str | None
    nodes: dict[str, dict[str, int]]
    kiosk: str

    @property
    def stored(self) -> int:
        return sum(n.get("readings", 0) for n in self.nodes.values())

    @property
    def missing(self) -> int:
        return sum(n.get("missing", 0) for n in self.nodes.values())


def cloud_state(
    status: dict[str, Any] | None,
    *,
    collector_alive: bool,
    collector_pid: int | None,
    status_age_s: float | None,
    store: Path,
    kiosk: str,
) -> CloudState:
    """What the footer shows, from the collector's last status file and whether it runs."""
    facts: dict[str, Any] = (status or {}).get("collector") or {}
    if not collector_alive:
        state = "stopped"
    elif status is None:
        state = "starting"
    elif facts.get("connected") and status_age_s is not None and status_age_s < STATUS_STALE_S:
        state = "up"
    else:
        state = "down"
    nodes = (status or {}).get("nodes") or {}
    return CloudState(
        collector=state,
        collector_pid=collector_pid,
        messages_per_s=float(facts.get("messages_per_s", 0.0)),
        received=int(facts.get("received", 0)),
        dead_letters=int(facts.get("dead_letters", 0)),
        store=str(store),
        store_error=(status or {}).get("store_error"),
        nodes={str(k): dict(v) for k, v in nodes.items() if isinstance(v, dict)},
        kiosk=kiosk,
    )


def node_row(node: DemoNode, cloud: CloudState, *, now: float, mono: float) -> NodeRow:
    """Read one node's outbox and link (off the loop: SQLite may wait for a commit)."""
    try:
        stats = node.outbox.stats()
    except OutboxError:  # closed while stopping: read the file instead
        stats = Outbox.read_stats(node.config.outbox_path)
    last = node.last_reading
    link = node.link.stats
    held = cloud.nodes.get(node.node)
    return NodeRow(
        node=node.node,
        kind=node.config.node.kind,
        connected=link.connected,
        connects=link.connects,
        protocol=link.protocol,
        produced=stats.produced,
        sent=stats.sent,
        receipted=stats.receipted,
        stored=None if held is None else int(held.get("readings", 0)),
        missing=None if held is None else int(held.get("missing", 0)),
        pending_rows=stats.pending_rows,
        pending_readings=stats.pending_readings,
        oldest_pending_age_s=(
            None if stats.oldest_pending_at is None else max(0.0, now - stats.oldest_pending_at)
        ),
        dropped=stats.dropped,
        last_reading=last.m if last else "",
        last_reading_age_s=None if last is None else max(0.0, mono - node.last_reading_mono),
        alarms=node.counters["alarms"] + link.alarms,
    )


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _uptime(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def render_table(rows: Sequence[NodeRow], *, title: str, final: bool = False) -> Table:
    """The per-node table: green connected, yellow backlog or missing seqs, red alarms or down.

    ``final`` is the table after everything stopped: links are down by design then, so it shows
    the protocol each node last spoke instead.
    """
    table = Table(title=title, title_justify="left", expand=False, header_style="bold")
    table.add_column("node")
    table.add_column("kind")
    table.add_column("link", min_width=12)
    for name in ("produced", "sent", "receipted", "stored", "missing"):
        table.add_column(name, justify="right")
    table.add_column("pending rows/rdg", justify="right")
    table.add_column("oldest", justify="right")
    # Wide enough for the longest names, so the table does not jump as readings come in.
    table.add_column("last reading", min_width=28)
    table.add_column("alarms", justify="right")
    for r in rows:
        if final:
            link = Text(f"stopped {r.protocol or '-'}", style="dim")
        elif r.connected:
            link = Text(f"● up {r.protocol}", style="green")
        elif r.connects == 0:
            link = Text("◌ connecting", style="yellow")
        else:
            link = Text("○ down", style="red")
        backlog = r.pending_readings > 0 and (r.oldest_pending_age_s or 0.0) > BACKLOG_AGE_S
        pending_style = "yellow" if backlog else ("green" if r.pending_rows == 0 else "")
        last = f"{r.last_reading} ({_age(r.last_reading_age_s)} ago)" if r.last_reading else "-"
        if r.missing is None:
            missing = Text("-", style="dim")
        else:
            missing = Text(f"{r.missing:,}", style="yellow" if r.missing else "green")
        table.add_row(
            r.node,
            r.kind,
            link,
            f"{r.produced:,}",
            f"{r.sent:,}",
            f"{r.receipted:,}",
            "-" if r.stored is None else f"{r.stored:,}",
            missing,
            Text(f"{r.pending_rows:,}/{r.pending_readings:,}", style=pending_style),
            Text(_age(r.oldest_pending_age_s), style="yellow" if backlog else ""),
            last,
            Text(str(r.alarms), style="bold red" if r.alarms else "dim"),
        )
    return table


_COLLECTOR_LOOK = {
    "up": ("● up", "green"),
    "starting": ("◌ starting", "yellow"),
    "down": ("○ down", "red"),
    "stopped": ("stopped", "dim"),
}


def footer(broker: str, cloud: CloudState, uptime_s: float) -> Text:
    """Broker, collector (state, messages/s, dead letters, store), kiosk and uptime."""
    line = Text()
    line.append("broker ", style="dim")
    line.append(broker, style="bold")
    line.append("   collector ", style="dim")
    label, style = _COLLECTOR_LOOK[cloud.collector]
    line.append(label, style=style)
    line.append(f"  {cloud.messages_per_s:,.1f} msg/s, {cloud.received:,} received, ")
    line.append(f"{cloud.dead_letters:,} dead letters", style="red" if cloud.dead_letters else "")
    line.append("   store ", style="dim")
    line.append(f"sqlite {cloud.store}")
    if cloud.store_error:
        line.append(f" ({cloud.store_error})", style="red")
    line.append("\nkiosk ", style="dim")
    line.append(cloud.kiosk)
    line.append("   uptime ", style="dim")
    line.append(_uptime(uptime_s))
    return line


def summary_line(rows: Sequence[NodeRow], cloud: CloudState, uptime_s: float) -> str:
    """The one-line progress report of ``--no-live``."""
    up = sum(r.connected for r in rows)
    ages = [r.oldest_pending_age_s for r in rows if r.oldest_pending_age_s is not None]
    oldest = f", oldest {max(ages):.1f} s" if ages else ""
    return (
        f"[{_uptime(uptime_s)}] nodes {up}/{len(rows)} connected, "
        f"produced {sum(r.produced for r in rows):,}, sent {sum(r.sent for r in rows):,}, "
        f"receipted {sum(r.receipted for r in rows):,}, "
        f"pending {sum(r.pending_readings for r in rows):,}{oldest}, "
        f"alarms {sum(r.alarms for r in rows)}; cloud stored {cloud.stored:,} readings, "
        f"missing {cloud.missing:,}; collector {cloud.collector}, "
        f"{cloud.messages_per_s:,.1f} msg/s, {cloud.dead_letters:,} dead letters; "
        f"kiosk {cloud.kiosk}"
    )


# ----------------------------------------------------------------------------- running it
@dataclass(frozen=True)
class DemoOptions:
    """What ``machikado demo`` was asked for."""

    state_dir: Path
    config_dir: Path
    port: int = 0
    nodes: int = 8
    speed: float = 30.0
    duration: float = 0.0
    live: bool = True
    kiosk: bool = False
    kiosk_reason: str = "off: --no-kiosk"
    web: bool = True
    web_port: int = 0


@dataclass
class Services:
    """The collector and the kiosk processes, and where to read how they are doing."""

    plan: CloudPlan
    collector: Child
    kiosk: Child | None
    kiosk_id: str
    kiosk_reason: str
    web: Child | None = None
    web_plan: WebPlan | None = None

    def kiosk_text(self, held: Mapping[str, int] | None = None) -> str:
        """The kiosk's line in the footer; ``held``: what the store has of it, if anything."""
        if self.kiosk is None:
            return self.kiosk_reason
        code = self.kiosk.exit_status()
        if self.kiosk.proc is None:
            return f"{self.kiosk_id} not started yet ({self.kiosk_reason})"
        if code is not None:
            return f"{self.kiosk_id} ended with status {code}: see {self.kiosk.log_path}"
        cloud = ""
        if held is not None:
            cloud = f", cloud stored {held.get('readings', 0):,}, missing {held.get('missing', 0)}"
        return f"{self.kiosk_id} ● running, pid {self.kiosk.pid} ({self.kiosk_reason}){cloud}"

    def cloud(self) -> CloudState:
        """The collector's status file and processes, read now (a file read: off the loop)."""
        status = read_status(self.plan.status)
        held = ((status or {}).get("nodes") or {}).get(self.kiosk_id)
        try:
            age: float | None = max(0.0, time.time() - self.plan.status.stat().st_mtime)
        except OSError:
            age = None
        return cloud_state(
            status,
            collector_alive=self.collector.alive,
            collector_pid=self.collector.pid,
            status_age_s=age,
            store=self.plan.store,
            kiosk=self.kiosk_text(held if isinstance(held, dict) else None),
        )


def _log_to_file(path: Path) -> TextIO:
    """Send structlog and stdlib logging (paho, amqtt) to ``path``: the terminal is the view's."""
    level = logging.getLogger().getEffectiveLevel()
    out = path.open("a", encoding="utf-8")
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    return out


async def run_demo(options: DemoOptions, stop: asyncio.Event, console: Console) -> dict[str, Any]:
    """Run the demo until ``stop`` is set or ``options.duration`` has passed; the summary.

    Starts the broker, the collector (and waits until it subscribed), the kiosk, the nodes; stops
    them the other way round: nodes (their outboxes flushed), kiosk, collector (it drains what it
    holds into the store), broker.
    """
    started = time.monotonic()
    port = options.port or free_port()
    state_dir = options.state_dir
    configs = plan_nodes(
        options.config_dir, state_dir, count=options.nodes, port=port, speed=options.speed
    )
    node_ids = {c.node.id: c.node.kind for c in configs}
    kiosk: Child | None = None
    kiosk_id = ""
    if options.kiosk:
        kiosk_id, kiosk_config = plan_kiosk(options.config_dir, state_dir, port=port)
        node_ids[kiosk_id] = "kiosk"
        kiosk = Child("kiosk", kiosk_command(kiosk_config), log_path=state_dir / "kiosk.log")
    plan = plan_cloud(options.config_dir, state_dir, port=port, node_ids=node_ids)
    # A status file of an earlier run would say "subscribed" before this collector is.
    plan.status.unlink(missing_ok=True)
    web_plan = (
        plan_web(state_dir, plan, port=options.web_port or free_port()) if options.web else None
    )
    services = Services(
        plan=plan,
        collector=Child("collector", collector_command(plan), log_path=plan.log),
        kiosk=kiosk,
        kiosk_id=kiosk_id,
        kiosk_reason=options.kiosk_reason,
        web=None
        if web_plan is None
        else Child("web", web_command(web_plan), log_path=web_plan.log),
        web_plan=web_plan,
    )
    broker_address = f"mqtt://{HOST}:{port}"
    nodes: list[DemoNode] = []
    async with embedded_broker(port):
        services.collector.start(child_env())
        try:
            await wait_for_collector(
                services.collector, plan.status, stop=stop, within_s=COLLECTOR_START_S
            )
            if kiosk is not None:
                kivy_home = str(state_dir.resolve() / "kivy")
                kiosk.start(child_env(KIVY_NO_ARGS="1", KIVY_HOME=kivy_home, KIVY_NO_FILELOG="1"))
            if services.web is not None and web_plan is not None:
                await add_demo_login(web_plan)
                services.web.start(child_env())
            try:
                nodes = [DemoNode(cfg) for cfg in configs]
                _announce(console, options, broker_address, port, nodes, services)
                nodes_stop = asyncio.Event()
                tasks = [asyncio.create_task(n.run(nodes_stop), name=n.node) for n in nodes]
                try:
                    await _show(options, stop, console, nodes, services, broker_address, started)
                finally:
                    nodes_stop.set()
                    for node, result in zip(
                        nodes, await asyncio.gather(*tasks, return_exceptions=True), strict=True
                    ):
                        if isinstance(result, BaseException):
                            log.error("demo_node_failed", node=node.node, error=repr(result))
            finally:
                if services.web is not None:
                    await services.web.stop(grace_s=WEB_STOP_S)
                if kiosk is not None:
                    await kiosk.stop(grace_s=KIOSK_STOP_S)
        finally:
            # SIGTERM: the collector takes what the broker already sent, writes it, acks it.
            await services.collector.stop(grace_s=COLLECTOR_DRAIN_S + COLLECTOR_STOP_S)
    rows, cloud = await _snapshot(nodes, services)
    final = read_status(plan.status) or {}
    uptime = time.monotonic() - started
    summary = {
        "broker": broker_address,
        "uptime_s": round(uptime, 1),
        "collector": {
            "exit_status": services.collector.returncode,
            "store": str(plan.store),
            "status_file": str(plan.status),
            "log": str(plan.log),
            "counters": final.get("collector", {}),
            "stored_readings": cloud.stored,
            "missing": cloud.missing,
        },
        "kiosk": {
            "node": kiosk_id or None,
            "started": kiosk is not None,
            "reason": options.kiosk_reason,
            "exit_status": None if kiosk is None else kiosk.returncode,
            "log": None if kiosk is None else str(kiosk.log_path),
        },
        "web": {
            "url": None if web_plan is None else web_plan.url,
            "exit_status": None if services.web is None else services.web.returncode,
            "log": None if web_plan is None else str(web_plan.log),
        },
        "cloud_nodes": cloud.nodes,
        "nodes": [asdict(r) for r in rows],
    }
    (state_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not options.live:  # the live view leaves its own blank line when it goes
        console.print()
    console.print(render_table(rows, title="machikado demo: summary", final=True))
    console.print(footer(broker_address, cloud, uptime))
    console.print(f"summary written to {state_dir / 'summary.json'}")
    return summary


def _announce(
    console: Console,
    options: DemoOptions,
    broker: str,
    port: int,
    nodes: Sequence[DemoNode],
    services: Services,
) -> None:
    kinds = deal_kinds(len(nodes))
    console.print(
        f"machikado demo: broker {broker}  (watch: mosquitto_sub -h {HOST} -p {port} "
        f"-t 'machikado/#' -v)",
        highlight=False,
    )
    console.print(
        f"collector pid {services.collector.pid} into {services.plan.store} "
        f"(log {services.plan.log}); kiosk {services.kiosk_text()}",
        highlight=False,
    )
    if services.web_plan is not None:
        web = services.web_plan
        console.print(
            f"web app for city staff: {web.url}  login: {web.user}, password in "
            f"{web.password_file} (log {web.log})",
            highlight=False,
        )
    console.print(
        f"{len(nodes)} nodes ({', '.join(f'{n} {k}' for k, n in kinds.items() if n)}), "
        f"speed {options.speed:g}x, state in {options.state_dir}, logs in "
        f"{options.state_dir / 'demo.log'}; Ctrl-C stops",
        highlight=False,
    )
    console.print()


async def _snapshot(
    nodes: Sequence[DemoNode], services: Services
) -> tuple[list[NodeRow], CloudState]:
    now, mono = time.time(), time.monotonic()

    def read() -> tuple[list[NodeRow], CloudState]:
        cloud = services.cloud()
        return [node_row(n, cloud, now=now, mono=mono) for n in nodes], cloud

    return await asyncio.to_thread(read)


async def _show(
    options: DemoOptions,
    stop: asyncio.Event,
    console: Console,
    nodes: Sequence[DemoNode],
    services: Services,
    broker: str,
    started: float,
) -> None:
    deadline = started + options.duration if options.duration > 0 else None
    title = f"machikado demo: {len(nodes)} simulated nodes, speed {options.speed:g}x"
    every = 0.5 if options.live else SUMMARY_EVERY_S

    async def frame() -> Group:
        rows, cloud = await _snapshot(nodes, services)
        uptime = time.monotonic() - started
        return Group(render_table(rows, title=title), footer(broker, cloud, uptime))

    async def tick() -> bool:
        """Wait one period; True when it is time to stop."""
        wait = every
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
        return stop.is_set() or (deadline is not None and time.monotonic() >= deadline)

    if options.live:
        with Live(await frame(), console=console, refresh_per_second=4, transient=True) as live:
            while not await tick():
                live.update(await frame())
        return
    while not await tick():
        rows, cloud = await _snapshot(nodes, services)
        line = summary_line(rows, cloud, time.monotonic() - started)
        console.print(line, highlight=False, soft_wrap=True)


def _on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Callable[[], None]:
    """SIGINT and SIGTERM set ``stop``; a second one stops waiting for a clean end."""
    sigs = (signal.SIGINT, signal.SIGTERM)

    def first() -> None:
        stop.set()
        for sig in sigs:
            loop.remove_signal_handler(sig)

    for sig in sigs:
        loop.add_signal_handler(sig, first)

    def restore() -> None:
        for sig in sigs:
            loop.remove_signal_handler(sig)

    return restore


StateDirOption = typer.Option(Path("var/demo"), help="Outboxes, logs and summary.json.")
ConfigDirOption = typer.Option(
    None, help="Where fleet.toml and nodes/*-sim.toml are; default: firmware_config/."
)


StateDirOption = typer.Option(Path("var/demo"), help="Outboxes, store, logs and summary.json.")
ConfigDirOption = typer.Option(
    None, help="Where fleet.toml and nodes/*-sim.toml are; default: firmware_config/."
)
KioskOption = typer.Option(
    None,
    "--kiosk/--no-kiosk",
    help="Start the kiosk window; default: when DISPLAY or WAYLAND_DISPLAY is set.",
)


@app.callback(invoke_without_command=True)
def demo(
    port: int = typer.Option(0, help="Broker port on 127.0.0.1; 0 picks a free one.", min=0),
    nodes: int = typer.Option(8, help="How many nodes, dealt restroom, vehicle, station.", min=1),
    speed: float = typer.Option(30.0, help="How much faster the simulated world runs.", min=0.1),
    duration: float = typer.Option(0.0, help="Stop by itself after this many seconds (0: no)."),
    live: bool | None = typer.Option(
        None, "--live/--no-live", help="Live table, or a summary line every few seconds."
    ),
    kiosk: bool | None = KioskOption,
    web: bool = typer.Option(True, "--web/--no-web", help="The web app for city staff."),
    web_port: int = typer.Option(
        8100, help="The web app's port on 127.0.0.1 (a free one if taken; 0: any).", min=0
    ),
    state_dir: Path = StateDirOption,
    fresh: bool = typer.Option(False, help="Wipe the state dir first (new streams, empty store)."),
    config_dir: Path | None = ConfigDirOption,
) -> None:
    """Start a broker, the collector into SQLite, the kiosk and simulated nodes; show what flows."""
    with_kiosk, why = kiosk_wanted(kiosk, os.environ)
    options = DemoOptions(
        state_dir=state_dir,
        config_dir=config_dir or default_config_dir(),
        port=port,
        nodes=nodes,
        speed=speed,
        duration=duration,
        live=sys.stdout.isatty() if live is None else live,
        kiosk=with_kiosk,
        kiosk_reason=why,
        web=web,
        web_port=web_port if web_port and port_free(web_port) else 0,
    )
    # Check the configs before anything starts, so a bad one is one line and nothing to undo.
    plan_nodes(options.config_dir, options.state_dir, count=nodes, port=port or 1883, speed=speed)
    prepare_state_dir(options.state_dir, fresh=fresh)
    console = Console(width=None if sys.stdout.isatty() else 160)
    # Left open to the end of the process: libraries log until the interpreter exits.
    _log_to_file(options.state_dir / "demo.log")

    async def main() -> None:
        stop = asyncio.Event()
        restore = _on_signals(asyncio.get_running_loop(), stop)
        try:
            await run_demo(options, stop, console)
        finally:
            restore()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        # Ctrl-C before the handlers were in place, or a second one: no clean stop to report.
        raise typer.Exit(130) from None
