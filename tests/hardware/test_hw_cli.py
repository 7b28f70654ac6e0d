"""``machikado hw decode``: JSON on stdout, one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hardware.cli import app

TEMPERATURE = "06 6e 01 00 ff ea 07 05 01 09 1e 00 03"  # 36.6 Cel, ear, 2026-05-01 09:30


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_decode_prints_the_reading_as_json_with_units(runner):
    result = runner.invoke(app, ["decode", "temperature", TEMPERATURE])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "characteristic": "temperature_measurement",
        "uuid": "0x2A1C",
        "at": "2026-05-01T09:30:00+00:00",
        "fields": {"temperature_c": 36.6, "temperature_type": "ear"},
        "units": {"temperature_c": "Cel"},
    }


@pytest.mark.parametrize(
    "args",
    [
        ["2A1C", TEMPERATURE.replace(" ", ":")],
        ["0x2a1c", TEMPERATURE.replace(" ", "")],
        ["temperature_measurement", *TEMPERATURE.split()],
    ],
)
def test_hex_may_use_spaces_colons_or_nothing(runner, args):
    result = runner.invoke(app, ["decode", *args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["fields"]["temperature_c"] == 36.6


def test_tz_option_reads_the_device_clock_in_that_zone(runner):
    result = runner.invoke(app, ["decode", "temperature", TEMPERATURE, "--tz", "Asia/Tokyo"])
    assert json.loads(result.stdout)["at"] == "2026-05-01T09:30:00+09:00"


def test_decodes_a_mobility_advert(runner):
    result = runner.invoke(app, ["decode", "mobility", "012a00000050b0040000e204010000"])
    assert result.exit_code == 0, result.output
    decoded = json.loads(result.stdout)
    assert decoded["uuid"] == "0xFFFF"
    assert decoded["fields"]["vehicle_id"] == 42
    assert decoded["units"]["speed_kmh"] == "km/h"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["heart_rate", "00"], "unknown characteristic 'heart_rate'"),
        (["battery", "5"], "odd number of digits"),
        (["battery", "zz"], "not a hex digit"),
        (["battery", "65"], "101 % is above 100"),
        (["weight", "02b036"], "need 10 bytes, got 3"),
        (["temperature", "00ffff7f00"], "NaN"),
        (["temperature", TEMPERATURE, "--tz", "Mars/Olympus"], "unknown time zone"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_status_2(runner, args, problem):
    result = runner.invoke(app, ["decode", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert problem in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


ROOT = (
    "import hardware.cli, machikado.cli as root; "
    "root.app.add_typer(hardware.cli.app, name='hw'); root.app()"
)


def test_root_command_runs_hw_decode_in_a_fresh_process():
    done = subprocess.run(
        [sys.executable, "-c", ROOT, "hw", "decode", "battery", "57"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["fields"] == {"battery_pct": 87}


def test_root_command_reports_bad_hex_with_status_2():
    done = subprocess.run(
        [sys.executable, "-c", ROOT, "hw", "decode", "battery", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "machikado: HEX has an odd number of digits (1)"
