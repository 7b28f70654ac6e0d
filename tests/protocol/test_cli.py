"""The root command loads only the part a command line names."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from protocol import cli
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
        [sys.executable, "-m", "protocol.cli", "hw", "decode", "battery", "5a"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert json.loads(out.stdout)["fields"] == {"battery_pct": 90}
