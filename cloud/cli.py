"""``machikado cloud ...``: run the collector, look into dead letters, ask for completeness.

Registered as the ``cloud`` subcommand group of ``machikado``; it also runs on its own
(``python -c "from cloud.cli import app; app()" collect --config PATH``). Output meant for
machines (dead letters, completeness) is JSON on stdout; logs go to stderr.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import structlog
import typer

from cloud.web.cli import _one_line_errors as _one_line_errors_web
from cloud.web.cli import app as web_app
from cloud.web.cli import grafana as grafana_command
from machikado.logs import configure
from protocol.errors import MachikadoError

if TYPE_CHECKING:
    from cloud.collector.checking import Checker
    from cloud.collector.status import StatusWriter
    from cloud.config import CollectorConfig
    from cloud.store import ReadableStore

app = typer.Typer(
    help="The cloud side: the collector, its dead letters, and completeness.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
deadletter_app = typer.Typer(help="Messages the collector could not store.", no_args_is_help=True)
app.add_typer(deadletter_app, name="deadletter")
# Its module loads the web stack (FastAPI, SQLAlchemy) only when a web command runs.
app.add_typer(web_app, name="web")
app.command("grafana")(_one_line_errors_web(grafana_command))

ConfigOption = typer.Option(..., "--config", "-c", help="The collector's TOML config.")

P = ParamSpec("P")
R = TypeVar("R")


@app.callback()
def _cloud() -> None:
    # Run on its own (not under the ``machikado`` root), logging is not set up yet.
    if not structlog.is_configured():
        configure()


def _one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """A project error is one line on stderr and exit status 2, also without the root command."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MachikadoError as exc:
            print(f"machikado cloud: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


def _echo_json(data: Any) -> None:
    from cloud.deadletter import printable_json

    # What nodes sent (payloads, topics, reasons quoting them) may hold control characters and
    # bidi overrides: escaped, the JSON reads back the same, and the terminal shows them.
    typer.echo(printable_json(data))


def _open(cfg: CollectorConfig) -> ReadableStore:
    from cloud.store import open_store

    return open_store(cfg.store)


@app.command()
@_one_line_errors
def collect(config: Path = ConfigOption) -> None:
    """Collect until SIGTERM or Ctrl-C; then stop taking messages, write and ack what is held."""
    from cloud.collector import Collector
    from cloud.config import load_config

    cfg = load_config(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_a: stop.set())
    with contextlib.ExitStack() as held:
        checker = _checker(cfg, held)
        Collector(
            status=_status_writer(cfg),
            mqtt=cfg.mqtt,
            batch=cfg.batch,
            checker=checker,
        ).run(stop)


def _checker(cfg: CollectorConfig, held: contextlib.ExitStack) -> Checker:
    """Where batches are checked and written: a second process, or this one (closed by ``held``)."""
    from cloud.collector import Intake
    from cloud.collector.batch import BatchWriter
    from cloud.collector.checking import LocalChecker, ProcessChecker
    from cloud.deadletter import DeadLetters
    from cloud.fleet import load_fleet

    if cfg.batch.check_process:
        process = ProcessChecker(cfg)
        held.callback(process.close)
        return process
    fleet = load_fleet(cfg.fleet.manifest)
    store = _open(cfg)
    held.callback(store.close)
    dead_letters = held.enter_context(
        DeadLetters(cfg.deadletter.path, policy=cfg.deadletter.policy())
    )
    writer = BatchWriter(store, dead_letters, initial_s=cfg.retry.initial_s, max_s=cfg.retry.max_s)
    intake = Intake(cfg.mqtt.topics, fleet, unknown_nodes=cfg.fleet.unknown_nodes)
    intake.usage.seed_from(store)
    return LocalChecker(intake, writer)


def _status_writer(cfg: CollectorConfig) -> StatusWriter | None:
    """The status file's writer, on a store connection of its own; None without a path."""
    from cloud.collector.status import StatusWriter

    if cfg.status.path is None:
        return None
    reads = _open(cfg)
    where = cfg.store.path if cfg.store.kind == "sqlite" else cfg.store.url
    return StatusWriter(
        cfg.status.path,
        reads,
        store_label=f"{cfg.store.kind} {where}",
        interval_s=cfg.status.interval_s,
        close=reads.close,
    )


@deadletter_app.command("list")
@_one_line_errors
def deadletter_list(
    config: Path = ConfigOption,
    pending: bool = typer.Option(False, "--pending", help="Only records not replayed yet."),
    limit: int = typer.Option(1000, help="At most this many, oldest first."),
) -> None:
    """List dead letters as JSON: ``records`` (id, time, topic, node, stream, seq, reasons, how
    much was kept; no payloads) and ``totals`` (records, and the messages not kept in full:
    ``brief`` past their node's rate, ``dropped`` to make room; in all and per node)."""
    from cloud.config import load_config
    from cloud.deadletter import DeadLetters

    cfg = load_config(config)
    with DeadLetters(cfg.deadletter.path, policy=cfg.deadletter.policy()) as dl:
        records = [r.summary() for r in dl.records(pending_only=pending, limit=limit)]
        _echo_json({"records": records, "totals": dl.totals()})


@deadletter_app.command("show")
@_one_line_errors
def deadletter_show(
    record: int = typer.Argument(..., help="The record's id."), config: Path = ConfigOption
) -> None:
    """Show one dead letter as JSON, with its payload."""
    from cloud.config import load_config
    from cloud.deadletter import DeadLetters

    cfg = load_config(config)
    with DeadLetters(cfg.deadletter.path, policy=cfg.deadletter.policy()) as dl:
        _echo_json(dl.get(record).detail())


@deadletter_app.command("replay")
@_one_line_errors
def deadletter_replay(
    records: Annotated[
        list[int] | None, typer.Argument(help="Record ids; none: every pending record.")
    ] = None,
    config: Path = ConfigOption,
) -> None:
    """Check stored payloads again (after a fix in the manifest or contract) and store them.

    A record is checked as of when it was received, so the clock-skew limits judge it as they
    did then. Records that pass are written and marked replayed; the others stay, and the
    output says why.
    """
    from cloud.collector.replay import replay
    from cloud.config import load_config
    from cloud.deadletter import DeadLetters
    from cloud.fleet import load_fleet

    cfg = load_config(config)
    fleet = load_fleet(cfg.fleet.manifest)
    store = _open(cfg)
    try:
        with DeadLetters(cfg.deadletter.path, policy=cfg.deadletter.policy()) as dl:
            result = replay(cfg, fleet, store, dl, records or None)
    finally:
        store.close()
    _echo_json(result)


def _iso(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=what) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@app.command()
@_one_line_errors
def completeness(
    config: Path = ConfigOption,
    since: str | None = typer.Option(None, help="ISO 8601; link points from then on."),
    until: str | None = typer.Option(None, help="ISO 8601; link points before then."),
    node: str | None = typer.Option(None, help="Only this node."),
) -> None:
    """Per node and stream: first and last seq, how many the store holds, which are missing.

    JSON: a list of ``{"node", "stream", "first", "last", "received", "missing": [[lo, hi]...],
    "missing_count"}``. Without ``--since``, seqs below the first one held count as missing.
    """
    from cloud.completeness import completeness as compute
    from cloud.config import load_config

    cfg = load_config(config)
    start, end = _iso(since, "--since"), _iso(until, "--until")
    store = _open(cfg)
    try:
        seqs = store.link_seqs(since=start, until=end, node=node)
    finally:
        store.close()
    _echo_json([s.to_json() for s in compute(seqs, from_one=start is None)])
