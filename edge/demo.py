"""``machikado demo``: an embedded broker, simulated nodes of every kind, and a live view.

Everything runs in one process on one asyncio loop: an amqtt broker on 127.0.0.1, a handful of
simulated restroom, vehicle and station nodes (each a :class:`~edge.runtime.NodeRuntime` with its
own outbox under the state dir), and :class:`~edge.standin.ReceiptStandin` receipting what they
send until the collector exists. amqtt speaks MQTT 3.1.1 only, so the nodes' ``auto`` links
fall back to it by themselves and the stand-in speaks 3.1.1.

The nodes are built from ``firmware_config/nodes/*-sim.toml`` with ids from
``firmware_config/fleet.toml`` while it has enough of a kind. Their world runs ``--speed`` times
faster than the wall clock, and so do their reporting intervals, so things happen within
seconds. Logs go to ``<state-dir>/demo.log``, the terminal shows the live table.

Example::

    machikado demo                               # Ctrl-C stops everything and prints a summary
    machikado demo --nodes 24 --duration 60 --no-live --state-dir /tmp/demo --fresh
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import shutil
import signal
import socket
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Sequence
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
from edge.standin import ReceiptStandin
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

app = typer.Typer(help="Run a demo: broker, simulated nodes, receipts and a live view.")


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


# ----------------------------------------------------------------------------- the services
def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (someone may take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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


# ------------------------------------------------------------------------------ the view
@dataclass(frozen=True)
class NodeRow:
    """One node's line of the view, and of ``summary.json``."""

    node: str
    kind: str
    connected: bool
    connects: int
    protocol: str
    produced: int
    sent: int
    receipted: int
    pending_rows: int
    pending_readings: int
    oldest_pending_age_s: float | None
    dropped: int
    last_reading: str
    last_reading_age_s: float | None
    alarms: int
    standin_readings: int


@dataclass(frozen=True)
class StandinTotals:
    """What the stand-in got from every node together."""

    envelopes: int
    readings: int
    duplicates: int
    invalid: int
    receipts_sent: int


def standin_totals(cloud: ReceiptStandin) -> tuple[StandinTotals, dict[str, int]]:
    """The stand-in's totals, and readings per node."""
    # dict() and list() copy in one step under the GIL; the stand-in's thread keeps adding.
    tallies = list(dict(cloud.tally).items())
    per_node: dict[str, int] = {}
    envelopes = readings = duplicates = 0
    for (node, _stream), t in tallies:
        envelopes += len(t.seqs)
        readings += t.readings
        duplicates += t.duplicates
        per_node[node] = per_node.get(node, 0) + t.readings
    totals = StandinTotals(
        envelopes=envelopes,
        readings=readings,
        duplicates=duplicates,
        invalid=len(cloud.invalid),
        receipts_sent=cloud.receipts_sent,
    )
    return totals, per_node


def node_row(node: DemoNode, standin_readings: int, *, now: float, mono: float) -> NodeRow:
    """Read one node's outbox and link (off the loop: SQLite may wait for a commit)."""
    try:
        stats = node.outbox.stats()
    except OutboxError:  # closed while stopping: read the file instead
        stats = Outbox.read_stats(node.config.outbox_path)
    last = node.last_reading
    link = node.link.stats
    return NodeRow(
        node=node.node,
        kind=node.config.node.kind,
        connected=link.connected,
        connects=link.connects,
        protocol=link.protocol,
        produced=stats.produced,
        sent=stats.sent,
        receipted=stats.receipted,
        pending_rows=stats.pending_rows,
        pending_readings=stats.pending_readings,
        oldest_pending_age_s=(
            None if stats.oldest_pending_at is None else max(0.0, now - stats.oldest_pending_at)
        ),
        dropped=stats.dropped,
        last_reading=last.m if last else "",
        last_reading_age_s=None if last is None else max(0.0, mono - node.last_reading_mono),
        alarms=node.counters["alarms"] + link.alarms,
        standin_readings=standin_readings,
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
    """The per-node table: green connected, yellow backlog, red alarms or down.

    ``final`` is the table after everything stopped: links are down by design then, so it shows
    the protocol each node last spoke instead.
    """
    table = Table(title=title, title_justify="left", expand=False, header_style="bold")
    table.add_column("node")
    table.add_column("kind")
    table.add_column("link", min_width=12)
    for name in ("produced", "sent", "receipted"):
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
        table.add_row(
            r.node,
            r.kind,
            link,
            f"{r.produced:,}",
            f"{r.sent:,}",
            f"{r.receipted:,}",
            Text(f"{r.pending_rows:,}/{r.pending_readings:,}", style=pending_style),
            Text(_age(r.oldest_pending_age_s), style="yellow" if backlog else ""),
            last,
            Text(str(r.alarms), style="bold red" if r.alarms else "dim"),
        )
    return table


def footer_line(broker: str, totals: StandinTotals, uptime_s: float) -> Text:
    """Broker address, the stand-in's totals and the uptime, on one line."""
    line = Text()
    line.append("broker ", style="dim")
    line.append(broker, style="bold")
    line.append("   stand-in ", style="dim")
    line.append(
        f"{totals.envelopes:,} envelopes, {totals.readings:,} readings, "
        f"{totals.duplicates:,} duplicates, "
    )
    line.append(f"{totals.invalid:,} invalid", style="red" if totals.invalid else "")
    line.append("   uptime ", style="dim")
    line.append(_uptime(uptime_s))
    return line


def summary_line(rows: Sequence[NodeRow], totals: StandinTotals, uptime_s: float) -> str:
    """The one-line progress report of ``--no-live``."""
    up = sum(r.connected for r in rows)
    ages = [r.oldest_pending_age_s for r in rows if r.oldest_pending_age_s is not None]
    oldest = f", oldest {max(ages):.1f} s" if ages else ""
    return (
        f"[{_uptime(uptime_s)}] nodes {up}/{len(rows)} connected, "
        f"produced {sum(r.produced for r in rows):,}, sent {sum(r.sent for r in rows):,}, "
        f"receipted {sum(r.receipted for r in rows):,}, "
        f"pending {sum(r.pending_readings for r in rows):,}{oldest}, "
        f"alarms {sum(r.alarms for r in rows)}; stand-in {totals.envelopes:,} envelopes, "
        f"{totals.readings:,} readings, {totals.duplicates:,} duplicates, "
        f"{totals.invalid:,} invalid"
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
    """Run the demo until ``stop`` is set or ``options.duration`` has passed; the summary."""
    started = time.monotonic()
    port = options.port or free_port()
    configs = plan_nodes(
        options.config_dir,
        options.state_dir,
        count=options.nodes,
        port=port,
        speed=options.speed,
    )
    broker_address = f"mqtt://{HOST}:{port}"
    async with embedded_broker(port):
        cloud = ReceiptStandin(HOST, port, protocol="3.1.1", client_id="machikado-demo-standin")
        try:
            await asyncio.to_thread(cloud.start)
        except TimeoutError as exc:
            raise EdgeError(f"demo: the stand-in could not subscribe: {exc}") from None
        try:
            nodes = [DemoNode(cfg) for cfg in configs]
            _announce(console, options, broker_address, port, nodes)
            nodes_stop = asyncio.Event()
            tasks = [asyncio.create_task(n.run(nodes_stop), name=n.node) for n in nodes]
            try:
                await _show(options, stop, console, nodes, cloud, broker_address, started)
            finally:
                nodes_stop.set()
                for node, result in zip(
                    nodes, await asyncio.gather(*tasks, return_exceptions=True), strict=True
                ):
                    if isinstance(result, BaseException):
                        log.error("demo_node_failed", node=node.node, error=repr(result))
            rows, totals = await _snapshot(nodes, cloud)
        finally:
            await asyncio.to_thread(cloud.stop)
    uptime = time.monotonic() - started
    summary = {
        "broker": broker_address,
        "uptime_s": round(uptime, 1),
        "standin": asdict(totals),
        "nodes": [asdict(r) for r in rows],
    }
    (options.state_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not options.live:  # the live view leaves its own blank line when it goes
        console.print()
    console.print(render_table(rows, title="machikado demo: summary", final=True))
    console.print(footer_line(broker_address, totals, uptime))
    console.print(f"summary written to {options.state_dir / 'summary.json'}")
    return summary


def _announce(
    console: Console, options: DemoOptions, broker: str, port: int, nodes: Sequence[DemoNode]
) -> None:
    kinds = deal_kinds(len(nodes))
    console.print(
        f"machikado demo: broker {broker}  (watch: mosquitto_sub -h {HOST} -p {port} "
        f"-t 'machikado/#' -v)",
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
    nodes: Sequence[DemoNode], cloud: ReceiptStandin
) -> tuple[list[NodeRow], StandinTotals]:
    totals, per_node = standin_totals(cloud)
    now, mono = time.time(), time.monotonic()

    def read() -> list[NodeRow]:
        return [node_row(n, per_node.get(n.node, 0), now=now, mono=mono) for n in nodes]

    return await asyncio.to_thread(read), totals


async def _show(
    options: DemoOptions,
    stop: asyncio.Event,
    console: Console,
    nodes: Sequence[DemoNode],
    cloud: ReceiptStandin,
    broker: str,
    started: float,
) -> None:
    deadline = started + options.duration if options.duration > 0 else None
    title = f"machikado demo: {len(nodes)} simulated nodes, speed {options.speed:g}x"
    every = 0.5 if options.live else SUMMARY_EVERY_S

    async def frame() -> Group:
        rows, totals = await _snapshot(nodes, cloud)
        uptime = time.monotonic() - started
        return Group(render_table(rows, title=title), footer_line(broker, totals, uptime))

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
        rows, totals = await _snapshot(nodes, cloud)
        line = summary_line(rows, totals, time.monotonic() - started)
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


@app.callback(invoke_without_command=True)
def demo(
    port: int = typer.Option(0, help="Broker port on 127.0.0.1; 0 picks a free one.", min=0),
    nodes: int = typer.Option(8, help="How many nodes, dealt restroom, vehicle, station.", min=1),
    speed: float = typer.Option(30.0, help="How much faster the simulated world runs.", min=0.1),
    duration: float = typer.Option(0.0, help="Stop by itself after this many seconds (0: no)."),
    live: bool | None = typer.Option(
        None, "--live/--no-live", help="Live table, or a summary line every few seconds."
    ),
    state_dir: Path = StateDirOption,
    fresh: bool = typer.Option(False, help="Wipe the state dir first (new streams)."),
    config_dir: Path | None = ConfigDirOption,
) -> None:
    """Start a broker, simulated nodes of every kind and a receipt stand-in; show what flows."""
    options = DemoOptions(
        state_dir=state_dir,
        config_dir=config_dir or default_config_dir(),
        port=port,
        nodes=nodes,
        speed=speed,
        duration=duration,
        live=sys.stdout.isatty() if live is None else live,
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
