"""The ``machikado`` command: a root that loads each part's subcommands lazily.

Parts register a typer app under the entry-point group ``machikado.commands`` (see
pyproject.toml). Loading is lazy so that ``machikado hw decode`` on a cloud host never imports
gpiozero, and a node never imports the web stack. This module imports no part.

The root options set up logging: at once, or for the kiosk (:data:`LOGGING_LATER`) the
standard library's at once and structlog's once its window is up (:mod:`machikado.logs`).
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points

import typer

from machikado import cliparams
from machikado.cliparams import PlainGroup
from machikado.logs import configure, configure_later
from protocol.errors import MachikadoError

GROUP = "machikado.commands"

app = typer.Typer(
    name="machikado",
    help="machikado: resident kiosks, facility sensors and the cloud that collects them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Root options read without pydantic, as the parts' own are (see machikado.cliparams).
    cls=PlainGroup,
)


#: Parts that finish setting up structlog themselves once started (see
#: :func:`machikado.logs.configure_later`): the kiosk, whose window comes up before structlog
#: and rich are imported.
LOGGING_LATER = frozenset({"kiosk"})


@app.callback()
def _root(
    ctx: typer.Context,
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
    log_json: bool = typer.Option(False, help="Write logs as JSON lines."),
) -> None:
    if not isinstance(logging.getLevelName(log_level.upper()), int):
        raise typer.BadParameter(
            f"unknown log level {log_level!r}: debug, info, warning or error",
            param_hint="--log-level",
        )
    if ctx.invoked_subcommand in LOGGING_LATER:
        configure_later(level=log_level, json=log_json)
    else:
        configure(level=log_level, json=log_json)
    if cliparams.UNUSABLE is not None:
        # Through the standard library: it must not load structlog for a part that waits.
        logging.getLogger(__name__).debug("cli_plain_options_off reason=%s", cliparams.UNUSABLE)


def _register(argv: list[str]) -> None:
    """Load the part the command line names, or every part (for help and unknown names)."""
    found = sorted(entry_points(group=GROUP), key=lambda e: e.name)
    # The first word that is not an option (nor an option's value) names the part.
    words = iter(argv)
    named = None
    for word in words:
        if word in ("--log-level",):
            next(words, None)
        elif not word.startswith("-"):
            named = word
            break
    chosen = [ep for ep in found if ep.name == named] or found
    for ep in chosen:
        app.add_typer(ep.load(), name=ep.name)


def main() -> None:
    """Console entry point: a project error is one line on stderr and exit status 2."""
    _register(sys.argv[1:])
    try:
        app()
    except MachikadoError as exc:
        print(f"machikado: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
