"""The ``machikado`` command: a root that loads each part's subcommands lazily.

Parts register a typer app under the entry-point group ``machikado.commands`` (see
pyproject.toml). Loading is lazy so that ``machikado hw decode`` on a cloud host never imports
gpiozero, and a node never imports the web stack. This module imports nothing of ours.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from protocol.errors import MachikadoError
from protocol.logs import configure

GROUP = "machikado.commands"

app = typer.Typer(
    name="machikado",
    help="machikado: resident kiosks, facility sensors and the cloud that collects them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
    log_json: bool = typer.Option(False, help="Write logs as JSON lines."),
) -> None:
    configure(level=log_level, json=log_json)


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
