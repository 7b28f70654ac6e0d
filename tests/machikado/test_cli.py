"""The root command: it loads only the part a command line names, and logs as its options say."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from machikado import cli
cli._register(sys.argv[1:])
print(json.dumps(sorted(m for m in ("edge.cli", "cloud.cli", "kiosk.cli", "hardware.cli")
                        if m in sys.modules)))
"""


def loaded(*argv: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, check=True, timeout=60
    )
    return list(json.loads(out.stdout))


def test_a_command_loads_only_its_own_part() -> None:
    assert loaded("hw", "decode", "battery", "5a") == ["hardware.cli"]
    assert loaded("--log-level", "debug", "edge", "status") == ["edge.cli"]


def test_help_and_unknown_words_load_every_part() -> None:
    everything = ["cloud.cli", "edge.cli", "hardware.cli", "kiosk.cli"]
    assert loaded("--help") == everything
    assert loaded("nonsense") == everything


def test_the_console_script_runs_a_part() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "machikado.cli", "hw", "decode", "battery", "5a"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert json.loads(out.stdout)["fields"] == {"battery_pct": 90}


# `machikado <root options> kiosk --config PATH` with the kiosk's start replaced by a part that
# logs the kiosk's way (LazyLogger, then structlog as the node does): what was loaded when it
# started, then what its log lines look like.
LOGGING_PROBE = """
import json, logging, sys
import kiosk.cli
from machikado import cli

def start(config, early, *, error_hold_s):
    print(json.dumps({"structlog_loaded": "structlog" in sys.modules}), flush=True)
    from kiosk.lazylog import LazyLogger
    LazyLogger("kiosk.test").info("kiosk_info_line", node="k1")
    import structlog
    structlog.get_logger("edge.test").debug("node_debug_line", node="k1")
    logging.getLogger("paho").info("paho info line")

kiosk.cli.window_settings = lambda path: object()
kiosk.cli.check_fonts = lambda settings: None
kiosk.cli.run_deferred = start
sys.argv = ["machikado", *sys.argv[1:]]
cli.main()
"""


def _kiosk_logging(*root_options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LOGGING_PROBE, *root_options, "kiosk", "--config", "kiosk.toml"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_kiosk_starts_before_structlog_is_loaded_and_logs_as_the_root_options_say() -> None:
    out = _kiosk_logging("--log-json", "--log-level", "info")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"structlog_loaded": False}
    lines = out.stderr.splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert [(e["event"], e["level"], e["node"]) for e in events] == [
        ("kiosk_info_line", "info", "k1")
    ]
    assert "paho info line" in lines


def test_the_log_level_filters_lines_logged_after_the_window_is_up() -> None:
    out = _kiosk_logging("--log-level", "warning")
    assert out.returncode == 0, out.stderr
    assert "kiosk_info_line" not in out.stderr
    assert "paho info line" not in out.stderr
    shown = _kiosk_logging("--log-level", "debug")
    assert "node_debug_line" in shown.stderr


def test_an_unknown_log_level_is_refused_naming_the_option() -> None:
    out = _kiosk_logging("--log-level", "loud")
    assert out.returncode == 2
    assert "--log-level" in out.stderr
    assert "'loud'" in out.stderr


EAGER_PROBE = """
import json, sys
import typer
from machikado import cli

part = typer.Typer()

@part.command()
def run() -> None:
    print(json.dumps({"structlog_loaded": "structlog" in sys.modules}), flush=True)
    import structlog
    structlog.get_logger("part.test").info("part_line", node="n1")

cli.app.add_typer(part, name="probe")
cli.app(["--log-json", "probe", "run"])
"""


def test_other_parts_find_structlog_set_up_when_they_start() -> None:
    out = subprocess.run(
        [sys.executable, "-c", EAGER_PROBE], capture_output=True, text=True, timeout=60
    )
    assert json.loads(out.stdout.splitlines()[0]) == {"structlog_loaded": True}
    [line] = [json.loads(x) for x in out.stderr.splitlines() if x.startswith("{")]
    assert (line["event"], line["node"]) == ("part_line", "n1")
