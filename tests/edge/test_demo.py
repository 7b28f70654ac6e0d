"""``machikado demo``: every kind of node produces, the stand-in receipts, outboxes drain, and
Ctrl-C, a taken port or a bad config each end the way a person at a terminal expects."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.demo import default_config_dir, plan_nodes
from edge.outbox import Outbox

FIRMWARE = default_config_dir()


class DemoProcess:
    """``python -m protocol.cli demo --no-live ...`` as a child, its output collected by line."""

    def __init__(self, state_dir: Path, *args: str) -> None:
        self.state_dir = state_dir
        cmd = [sys.executable, "-m", "protocol.cli", "demo", "--no-live"]
        cmd += ["--state-dir", str(state_dir), *args]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_errors, daemon=True)
        self._err_reader.start()

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        self.errors.extend(self.proc.stderr)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for_line(self, what: str, predicate: Callable[[str], bool], timeout: float) -> str:
        """The first output line that ``predicate`` accepts; fail naming ``what`` if none comes."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line with {what}; output:\n{self.output}")
                self._cond.wait(min(left, 0.5))

    def wait(self, timeout: float) -> tuple[int, str]:
        """Exit status and stderr, once the demo has ended by itself."""
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"demo still running after {timeout} s:\n{self.output}") from None
        self._reader.join(10)
        self._err_reader.join(10)
        return status, "".join(self.errors)

    def summary(self) -> dict[str, Any]:
        return dict(json.loads((self.state_dir / "summary.json").read_text()))


@pytest.fixture
def running() -> Iterator[list[DemoProcess]]:
    """Demos a test starts; any still running at the end is killed."""
    started: list[DemoProcess] = []
    yield started
    for demo in started:
        if demo.proc.poll() is None:
            demo.proc.kill()
            demo.proc.wait()


def start(running: list[DemoProcess], state_dir: Path, *args: str) -> DemoProcess:
    demo = DemoProcess(state_dir, *args)
    running.append(demo)
    return demo


def test_demo_runs_every_kind_of_node_and_the_stand_in_receipts_them_all(
    tmp_path: Path, running: list[DemoProcess]
) -> None:
    demo = start(running, tmp_path / "demo", "--duration", "20")
    status, err = demo.wait(120)
    assert status == 0, f"{err}\n{demo.output}"
    summary = demo.summary()
    nodes = {n["node"]: n for n in summary["nodes"]}
    kinds = [n["kind"] for n in nodes.values()]
    assert (kinds.count("restroom"), kinds.count("vehicle"), kinds.count("station")) == (3, 3, 2)
    assert {"rr-01", "rr-02", "rr-03", "mv-01", "mv-02", "mv-03", "st-01", "st-02"} == set(nodes)
    for name, n in nodes.items():
        assert n["produced"] > 0, f"{name} produced nothing"
        assert n["standin_readings"] > 0, f"the stand-in got nothing from {name}"
        assert n["receipted"] > 0, f"{name} never had a reading receipted"
        # amqtt speaks 3.1.1 only, and the demo configures its nodes for it.
        assert n["protocol"] == "3.1.1"
        # What was made in the last moments may still wait for its receipt; nothing older.
        assert n["pending_rows"] <= 2, f"{name} kept {n['pending_rows']} envelopes"
        stats = Outbox.read_stats(tmp_path / "demo" / name / "outbox.sqlite")
        assert stats.produced == n["produced"]
        assert stats.dropped == 0
    assert summary["standin"]["invalid"] == 0
    assert summary["standin"]["readings"] >= sum(n["receipted"] for n in nodes.values())
    assert "machikado demo: summary" in demo.output
    for name in nodes:
        assert name in demo.output


def test_ctrl_c_mid_run_stops_everything_and_prints_the_summary(
    tmp_path: Path, running: list[DemoProcess]
) -> None:
    demo = start(running, tmp_path / "demo", "--nodes", "3")
    demo.wait_for_line(
        "every node connected and readings receipted",
        lambda line: "nodes 3/3 connected" in line and "receipted 0," not in line,
        60,
    )
    demo.proc.send_signal(signal.SIGINT)
    status, err = demo.wait(60)
    assert status == 0, f"{err}\n{demo.output}"
    assert "Traceback" not in err
    assert "machikado demo: summary" in demo.output
    summary = demo.summary()
    assert sorted(n["node"] for n in summary["nodes"]) == ["mv-01", "rr-01", "st-01"]
    assert all(n["receipted"] > 0 for n in summary["nodes"])


def test_a_taken_port_is_one_line_and_exit_status_2(
    tmp_path: Path, running: list[DemoProcess]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = start(running, tmp_path / "demo", "--port", str(port), "--duration", "5")
        status, err = demo.wait(60)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(port) in lines[0]
    assert "in use" in lines[0]


def test_a_bad_sample_config_is_one_line_naming_the_key(
    tmp_path: Path, running: list[DemoProcess]
) -> None:
    configs = tmp_path / "firmware_config"
    shutil.copytree(FIRMWARE, configs)
    sample = configs / "nodes" / "vehicle-sim.toml"
    sample.write_text(sample.read_text().replace("[mobility]", "[mobility]\nwheels = 3"))
    demo = start(running, tmp_path / "demo", "--config-dir", str(configs), "--duration", "5")
    status, err = demo.wait(60)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "mobility.wheels: unknown key" in lines[0]
    assert "vehicle-sim.toml" in lines[0]


def test_fresh_does_not_wipe_a_directory_that_is_not_a_demos(
    tmp_path: Path, running: list[DemoProcess]
) -> None:
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    demo = start(running, precious, "--fresh", "--duration", "5")
    status, err = demo.wait(60)
    assert status == 2
    assert "--fresh will not wipe" in err
    assert (precious / "keep.txt").read_text() == "mine"


def test_nodes_beyond_the_fleet_manifest_get_ids_of_their_kind(tmp_path: Path) -> None:
    configs = plan_nodes(FIRMWARE, tmp_path, count=14, port=18830, speed=30)
    ids = [c.node.id for c in configs]
    assert ids == [
        *("rr-01", "rr-02", "rr-03", "rr-04", "rr-05"),
        *("mv-01", "mv-02", "mv-03", "mv-04", "mv-05"),
        *("st-01", "st-02", "st-03", "st-04"),
    ]
    vehicles = [c for c in configs if c.node.kind == "vehicle"]
    assert [v.mobility.vehicle_id for v in vehicles] == [1001, 1002, 1003, 1004, 1005]
    assert len({v.mobility.gatt_address for v in vehicles}) == 5
    assert len({c.outbox_path for c in configs}) == 14
    for c in configs:
        assert c.outbox_path.parent == tmp_path / c.node.id
        assert (c.mqtt.host, c.mqtt.port, c.mqtt.protocol) == ("127.0.0.1", 18830, "3.1.1")
        assert c.simulation.enabled
        assert c.simulation.speed == 30


def test_a_real_nodes_environment_does_not_move_the_demo_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MACHIKADO_MQTT__PORT", "8883")
    monkeypatch.setenv("MACHIKADO_NODE__DATA_DIR", "/var/lib/machikado")
    configs = plan_nodes(FIRMWARE, tmp_path, count=3, port=18830, speed=30)
    assert {c.mqtt.port for c in configs} == {18830}
    assert all(c.node.data_dir == tmp_path / c.node.id for c in configs)
