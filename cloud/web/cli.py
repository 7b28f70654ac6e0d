"""``machikado cloud web``: serve the staff web app, and set it up (accounts, API tokens).

``machikado cloud web --config PATH`` serves until SIGTERM. ``adduser`` makes an account
(the first admin too); the password is asked for twice, or read from a file, never taken from
the command line where other users see it in ``/proc``. ``token`` makes an API token and writes
it to a new file of mode 0600: it is shown nowhere else.
"""

from __future__ import annotations

import functools
import getpass
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import structlog
import typer

from protocol.errors import MachikadoError

if TYPE_CHECKING:
    from cloud.web.db import Database
    from cloud.web.settings import WebConfig

log = structlog.get_logger(__name__)

app = typer.Typer(
    help="The web app for city staff: fleet, trials, completeness, exports, JSON API.",
    invoke_without_command=True,
    pretty_exceptions_enable=False,
)
ConfigOption = typer.Option(..., "--config", "-c", help="The web app's TOML config.")

P = ParamSpec("P")
R = TypeVar("R")


def _one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MachikadoError as exc:
            print(f"machikado cloud web: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


def _load(config: Path) -> WebConfig:
    from cloud.web.settings import load_config

    return load_config(config)


def _database(cfg: WebConfig) -> Database:
    from cloud.web.app import _db_password
    from cloud.web.db import Database

    db = Database(cfg.database.url, password=_db_password(cfg))
    db.upgrade()
    return db


@app.callback()
@_one_line_errors
def serve(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="The web app's TOML config.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Listen here instead of web.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen here instead of web.port.")] = None,
) -> None:
    """Serve the web app until SIGTERM (with no subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        raise typer.BadParameter("give the web app's config", param_hint="--config")
    import uvicorn

    from cloud.web.app import create_app

    cfg = _load(config)
    app_ = create_app(cfg)
    bind_host, bind_port = host or cfg.web.host, port or cfg.web.port
    log.info("web_serving", url=f"http://{bind_host}:{bind_port}/")
    # uvicorn finishes the requests in flight on SIGTERM or SIGINT, then raises the signal
    # again for the handler that was there before it: this one, so that a stop asked for is a
    # clean exit (status 0), not a death by the signal.
    stopped: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: stopped.append(number))
    uvicorn.run(
        app_,
        host=bind_host,
        port=bind_port,
        log_config=None,  # our logging, set up by the root command
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        server_header=False,
    )
    log.info("web_stopped", signal=signal.Signals(stopped[0]).name if stopped else None)


def _read_password(password_file: Path | None) -> str:
    if password_file is not None:
        return password_file.read_text(encoding="utf-8").rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise typer.BadParameter("the two passwords differ")
    return first


@app.command()
@_one_line_errors
def adduser(
    username: Annotated[str, typer.Argument(help="Lower case, digits and '-'.")],
    config: Path = ConfigOption,
    role: Annotated[str, typer.Option(help="admin, staff or auditor.")] = "staff",
    display_name: Annotated[str, typer.Option(help="The name pages show.")] = "",
    password_file: Annotated[
        Path | None, typer.Option(help="Read the password from this file instead of asking.")
    ] = None,
) -> None:
    """Add an account (the first admin, or anyone)."""
    from cloud.web.accounts import create_user

    cfg = _load(config)
    password = _read_password(password_file)
    db = _database(cfg)
    with db.session() as s:
        create_user(
            s,
            username=username,
            password=password,
            role=role,
            display_name=display_name,
            actor=f"cli:{getpass.getuser()}",
        )
    typer.echo(f"user {username} ({role}) added")


@app.command()
@_one_line_errors
def token(
    name: Annotated[str, typer.Argument(help="Who the token is for, e.g. partner-mobility.")],
    out: Annotated[Path, typer.Option(help="A new file to write the token to (mode 0600).")],
    config: Path = ConfigOption,
) -> None:
    """Make an API token for a client of /api/v1 and write it to a new 0600 file."""
    from cloud.web.accounts import create_api_token

    cfg = _load(config)
    db = _database(cfg)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise typer.BadParameter(f"{out} exists: give a new file", param_hint="--out") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh, db.session() as s:
        fh.write(create_api_token(s, name=name, actor=f"cli:{getpass.getuser()}") + "\n")
    typer.echo(f"API token {name} written to {out}")


@app.command()
@_one_line_errors
def migrate(config: Path = ConfigOption) -> None:
    """Bring the web app's database up to date (serving does this too)."""
    cfg = _load(config)
    db = _database(cfg)
    typer.echo(f"web database at revision {db.revision()}")


def grafana(
    out: Annotated[Path, typer.Option(help="The folder to write the bundle into.")],
    config: Path = ConfigOption,
) -> None:
    """Write Grafana provisioning: the store as a data source, a dashboard per trial."""
    from cloud.fleet import load_fleet
    from cloud.web.grafana import write_bundle

    cfg = _load(config)
    written = write_bundle(out, load_fleet(cfg.fleet.manifest), cfg.store)
    typer.echo(f"{len(written)} files written under {out}")


@app.command()
@_one_line_errors
def rollup(config: Path = ConfigOption) -> None:
    """Make the daily rollups of every day that has ended (the app also does this itself)."""
    from rich.progress import Progress

    from cloud.web.app import create_app

    cfg = _load(config)
    state = create_app(cfg).state.web
    job = state.rollup_job()
    first = job.first_day()
    days = job.pending(first) if first is not None else []
    with Progress(transient=True) as progress:
        task = progress.add_task("daily rollups", total=len(days))
        for day in days:
            job.roll(day)
            progress.advance(task)
    typer.echo(f"{len(days)} days rolled up" + (f" from {first}" if first else " (no data yet)"))
