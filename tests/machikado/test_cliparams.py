"""Our command lines read plain options without pydantic, exactly as typer does, or as typer.

Every value is run through two copies of one command: typer's own, and one whose options are
read plainly (:mod:`machikado.cliparams`). What the callback receives, what is printed and the
exit status must be the same, for good values and for bad ones. On the installed typer the
plain reading is on for ``machikado kiosk --config PATH``, root options included; on a typer
whose internals are not as expected it is off and every command still works.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

from machikado.cliparams import PlainCommand, PlainGroup

TIMEOUT_S = 120


def _app(cls: type[typer.core.TyperGroup] | None, seen: list[dict[str, Any]]) -> typer.Typer:
    app = typer.Typer(invoke_without_command=True, cls=cls)

    @app.callback()
    def main(
        path: Annotated[Path | None, typer.Option("--path")] = None,
        existing: Annotated[
            Path | None, typer.Option("--existing", exists=True, dir_okay=False)
        ] = None,
        hold: Annotated[float, typer.Option("--hold", min=0.0, max=100.0)] = 15.0,
        count: Annotated[int, typer.Option("--count", min=1)] = 3,
        name: Annotated[str, typer.Option("--name")] = "kiosk",
        loud: Annotated[bool, typer.Option("--loud")] = False,
    ) -> None:
        """A command with one option of each plain kind."""
        seen.append(
            {"path": path, "existing": existing, "hold": hold, "count": count, "name": name}
            | {"loud": loud}
        )

    return app


def _run(cls: type[typer.core.TyperGroup] | None, args: list[str]) -> tuple[Any, ...]:
    seen: list[dict[str, Any]] = []
    result = CliRunner().invoke(_app(cls, seen), args, terminal_width=100)
    values = {k: (type(v), v) for k, v in seen[0].items()} if seen else None
    return values, result.output, result.exit_code


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--path", "kiosk.toml"],
        ["--path", " spaced name .toml"],
        ["--path", ""],
        ["--existing", "{file}"],
        ["--existing", "{tmp}/absent.toml"],
        ["--existing", "{tmp}"],
        ["--hold", "0"],
        ["--hold", "2.5"],
        ["--hold", "-0"],
        ["--hold", "-1"],
        ["--hold", "100.5"],
        ["--hold", "1e1"],
        ["--hold", "007"],
        ["--hold", "abc"],
        ["--hold", " 3 "],
        ["--hold", "nan"],
        ["--count", "12"],
        ["--count", "0"],
        ["--count", "1.0"],
        ["--count", "1_000"],
        ["--name", "a b"],
        ["--name", ""],
        ["--loud", "--name", "x"],
        ["--help"],
        ["--nope"],
    ],
)
def test_plain_reading_gives_what_typer_gives(args: list[str], tmp_path: Path) -> None:
    file = tmp_path / "kiosk.toml"
    file.write_text("", encoding="utf-8")
    args = [a.format(file=file, tmp=tmp_path) for a in args]
    assert _run(PlainGroup, args) == _run(None, args)


def test_a_plain_command_reads_its_options_like_typer() -> None:
    def build(cls: type[typer.core.TyperCommand] | None, seen: list[Any]) -> typer.Typer:
        app = typer.Typer()

        @app.command(cls=cls)
        def snap(out: Annotated[Path, typer.Option("--out")], hold: float = 1.0) -> None:
            seen.append((out, hold))

        return app

    for args in (["--out", "shots"], ["--out", "shots", "--hold", "x"], []):
        mine: list[Any] = []
        theirs: list[Any] = []
        ours = CliRunner().invoke(build(PlainCommand, mine), args, terminal_width=100)
        typers = CliRunner().invoke(build(None, theirs), args, terminal_width=100)
        assert (mine, ours.output, ours.exit_code) == (theirs, typers.output, typers.exit_code)


# `machikado ... kiosk --config PATH` through the root command, up to the kiosk's start: what
# the kiosk's callback was given, whether pydantic was imported by then, whether the plain
# reading was on. The kiosk's window is replaced by a report (this is about the command line).
PROBE = """
import json, sys
SHIM, ARGV = sys.argv[1], sys.argv[2:]
exec(SHIM)
import kiosk.cli
from machikado import cli, cliparams

def report(config, early, *, error_hold_s):
    print(json.dumps({
        "config": str(config), "error_hold_s": error_hold_s,
        "pydantic": "pydantic" in sys.modules, "plain": cliparams.UNUSABLE is None,
    }))

kiosk.cli.window_settings = lambda path: object()
kiosk.cli.check_fonts = lambda settings: None
kiosk.cli.run_deferred = report
sys.argv = ["machikado", *ARGV]
cli.main()
"""

#: Ways a typer release could differ from the one the plain reading was written against, as
#: machikado.cliparams sees them when it is imported (undone afterwards: typer's own code, loaded
#: before, must keep working the way a consistent typer release would).
CHANGED_TYPER = {
    "module gone": (
        "import sys, typer._coercion\n"
        "sys.modules['typer._coercion'] = None\n"
        "import machikado.cliparams\n"
        "sys.modules['typer._coercion'] = typer._coercion\n"
    ),
    "name gone": (
        "import typer._param_types as m\n"
        "f = m.coerce_cli_path\n"
        "del m.coerce_cli_path\n"
        "import machikado.cliparams\n"
        "m.coerce_cli_path = f\n"
    ),
    "signature changed": (
        "import typer._param_types as m\n"
        "f = m.coerce_cli_path\n"
        "m.coerce_cli_path = lambda value, info, **kw: f(value, info, **kw)\n"
        "import machikado.cliparams\n"
        "m.coerce_cli_path = f\n"
    ),
}


def _machikado(*argv: str, shim: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100", "TERM": "dumb"}
    return subprocess.run(
        [sys.executable, "-c", PROBE, shim, *argv],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
    )


def test_the_kiosk_command_line_is_read_through_the_root_without_importing_pydantic(
    tmp_path: Path,
) -> None:
    config = tmp_path / "kiosk.toml"
    argv = ["--log-level", "warning", "kiosk", "--config", str(config), "--error-hold-s", "2"]
    out = _machikado(*argv)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "config": str(config),
        "error_hold_s": 2.0,
        "pydantic": False,
        "plain": True,
    }


@pytest.mark.parametrize("change", sorted(CHANGED_TYPER))
def test_a_changed_typer_turns_the_plain_reading_off_and_commands_still_work(
    change: str, tmp_path: Path
) -> None:
    shim = CHANGED_TYPER[change]
    config = tmp_path / "kiosk.toml"
    out = _machikado("--log-level", "debug", "kiosk", "--config", str(config), shim=shim)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "config": str(config),
        "error_hold_s": 15.0,
        "pydantic": True,  # typer's own reading, as before the plain one existed
        "plain": False,
    }
    assert "cli_plain_options_off" in out.stderr
    assert "typer changed" in out.stderr

    helped = _machikado("--log-level", "debug", "kiosk", "--help", shim=shim)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout == _machikado("kiosk", "--help").stdout
    assert "--config" in helped.stdout
    assert "cli_plain_options_off" in helped.stderr


def test_a_bad_value_is_refused_the_same_with_the_plain_reading_off(tmp_path: Path) -> None:
    argv = ["kiosk", "--config", str(tmp_path), "--error-hold-s", "-1"]
    plain = _machikado(*argv)
    typers = _machikado(*argv, shim=CHANGED_TYPER["module gone"])
    assert (plain.returncode, plain.stderr) == (typers.returncode, typers.stderr)
    assert plain.returncode == 2
    assert "--error-hold-s" in plain.stderr
