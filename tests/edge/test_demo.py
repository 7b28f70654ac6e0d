"""``machikado demo``: every kind of node produces, the real collector stores it all in SQLite,
the kiosk starts and stops with it, and Ctrl-C, a taken port or a bad config each end the way
a person at a terminal expects."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from cloud.collector.points import FLEET_STATE, LINK
from edge.demo import default_config_dir, kiosk_wanted, manifest_text, plan_nodes
from edge.outbox import Outbox

FIRMWARE = default_config_dir()


class DemoProcess:
    """``python -m machikado.cli demo --no-live ...`` as a child, its output collected by line."""

    def __init__(self, state_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.state_dir = state_dir
        cmd = [sys.executable, "-m", "machikado.cli", "demo", "--no-live"]
        # No kiosk window unless a test asks for one, whatever display the machine has.
        kiosk = [] if "--kiosk" in args else ["--no-kiosk"]
        cmd += ["--state-dir", str(state_dir), *kiosk, *args]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
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


def start(
    running: list[DemoProcess], state_dir: Path, *args: str, env: dict[str, str] | None = None
) -> DemoProcess:
    demo = DemoProcess(state_dir, *args, env=env)
    running.append(demo)
    return demo


def stored_readings(store: Path) -> dict[str, int]:
    """Readings per node in the collector's SQLite store, read with nothing of ours."""
    with contextlib.closing(sqlite3.connect(store)) as db:
        rows = db.execute(
            "SELECT json_extract(series, '$.node'), count(*) FROM points "
            "WHERE measurement NOT IN (?, ?) GROUP BY 1",
            (LINK, FLEET_STATE),
        ).fetchall()
    return {str(node): int(n) for node, n in rows}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_nodes_readings_reach_the_collectors_sqlite_store_with_nothing_missing(
    tmp_path: Path, running: list[DemoProcess]
) -> None:
    demo = start(running, tmp_path / "demo", "--duration", "20")
    status, err = demo.wait(180)
    assert status == 0, f"{err}\n{demo.output}"
    summary = demo.summary()
    nodes = {n["node"]: n for n in summary["nodes"]}
    kinds = [n["kind"] for n in nodes.values()]
    assert (kinds.count("restroom"), kinds.count("vehicle"), kinds.count("station")) == (3, 3, 2)
    assert {"rr-01", "rr-02", "rr-03", "mv-01", "mv-02", "mv-03", "st-01", "st-02"} == set(nodes)
    store = tmp_path / "demo" / "cloud" / "store.sqlite"
    in_store = stored_readings(store)
    final = json.loads((tmp_path / "demo" / "cloud" / "status.json").read_text())
    assert final["running"] is False, "the last status file is not the one after the drain"
    for name, n in nodes.items():
        assert n["produced"] > 0, f"{name} produced nothing"
        assert n["receipted"] > 0, f"{name} never had a reading receipted"
        # amqtt speaks 3.1.1 only, and the demo configures its nodes for it.
        assert n["protocol"] == "3.1.1"
        # Every reading the cloud receipted is in the store; nothing is there twice.
        assert n["receipted"] <= in_store.get(name, 0) <= n["produced"], name
        # After the collector's drain, no seq of any stream is missing.
        assert n["missing"] == 0, f"{name}: {n['missing']} seqs missing"
        assert final["nodes"][name]["missing"] == 0
        assert final["nodes"][name]["envelopes"] == final["nodes"][name]["last_seq"]
        stats = Outbox.read_stats(tmp_path / "demo" / name / "outbox.sqlite")
        assert stats.produced == n["produced"]
        assert stats.dropped == 0
    assert summary["collector"]["exit_status"] == 0
    assert summary["collector"]["counters"]["dead_letters"] == 0
    assert summary["collector"]["missing"] == 0
    assert summary["kiosk"]["started"] is False
    # The web app ran on the demo's store, and stopped cleanly; its demo login is a 0600 file.
    assert summary["web"]["url"].startswith("http://127.0.0.1:")
    assert summary["web"]["exit_status"] == 0
    assert f"web app for city staff: {summary['web']['url']}" in demo.output
    password = tmp_path / "demo" / "cloud" / "web-password"
    assert stat.S_IMODE(password.stat().st_mode) == 0o600
    assert password.read_text().strip() not in demo.output
    assert "machikado demo: summary" in demo.output
    assert "collector stopped" in demo.output
    assert summary["collector"]["store"] == str(store)
    assert "store sqlite" in demo.output
    assert "kiosk off: --no-kiosk" in demo.output
    for name in nodes:
        assert name in demo.output


def test_with_kiosk_the_kiosk_connects_to_the_demo_broker_and_stops_cleanly(
    tmp_path: Path, running: list[DemoProcess]
) -> None:
    port = free_port()
    env = {"SDL_VIDEODRIVER": "offscreen"}
    demo = start(
        running, tmp_path / "demo", "--kiosk", "--nodes", "1", "--port", str(port), env=env
    )
    demo.wait_for_line("the kiosk running", lambda line: "kiosk ks-01 ● running" in line, 90)
    births: list[paho.MQTTMessage] = []
    got_birth = threading.Event()

    def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        births.append(msg)
        got_birth.set()

    def on_connect(client: paho.Client, *_a: object) -> None:
        client.subscribe("machikado/v1/ks-01/birth", qos=1)

    watcher = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="test-birth-watcher",
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    watcher.on_connect = on_connect
    watcher.on_message = on_message
    watcher.connect("127.0.0.1", port)
    watcher.loop_start()
    try:
        # Retained: it comes whether the kiosk connected before or after we subscribed.
        assert got_birth.wait(90), f"no birth from the kiosk; output:\n{demo.output}"
    finally:
        watcher.disconnect()
        watcher.loop_stop()
    assert json.loads(births[0].payload)["node"] == "ks-01"
    demo.proc.send_signal(signal.SIGINT)
    status, err = demo.wait(120)
    assert status == 0, f"{err}\n{demo.output}"
    summary = demo.summary()
    assert summary["kiosk"]["started"] is True
    assert summary["kiosk"]["exit_status"] == 0
    kiosk_log = (tmp_path / "demo" / "kiosk.log").read_text()
    assert "kiosk_node_stopped" in kiosk_log
    assert "[error" not in kiosk_log  # structlog errors; Kivy logs optional-provider imports
    assert "kiosk ks-01 ended with status 0" in demo.output


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
    # The collector got SIGTERM after the nodes stopped, drained and ended on its own.
    assert summary["collector"]["exit_status"] == 0
    assert all(n["missing"] == 0 for n in summary["nodes"])


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


def test_the_demo_manifest_places_nodes_beyond_the_fleet_like_the_last_of_their_kind(
    tmp_path: Path,
) -> None:
    text, unplaced = manifest_text(
        FIRMWARE / "fleet.toml", {"rr-01": "restroom", "rr-99": "restroom", "zz-01": "robot"}
    )
    assert unplaced == ["zz-01"]
    fleet = tomllib.loads(text)
    added = [n for n in fleet["nodes"] if n["id"] == "rr-99"]
    assert len(added) == 1
    last_restroom = [n for n in fleet["nodes"] if n["kind"] == "restroom"][-2]
    assert (added[0]["trial"], added[0]["site"]) == (last_restroom["trial"], last_restroom["site"])
    assert [n["id"] for n in fleet["nodes"]].count("rr-01") == 1


def test_the_kiosk_starts_by_itself_only_where_there_is_a_display() -> None:
    assert kiosk_wanted(None, {})[0] is False
    assert kiosk_wanted(None, {"WAYLAND_DISPLAY": "wayland-0"})[0] is True
    assert kiosk_wanted(None, {"DISPLAY": ":0"})[0] is True
    assert kiosk_wanted(True, {})[0] is True
    assert kiosk_wanted(False, {"DISPLAY": ":0"}) == (False, "off: --no-kiosk")
