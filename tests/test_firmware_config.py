"""The shipped firmware_config/ files load, and agree with each other and with the fleet."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import typing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cloud.config import load_config as load_collector_config
from cloud.web.settings import load_config as load_web_config
from edge.config import NodeConfig, load_config
from machikado.settings import is_loopback
from protocol.messages import NodeKind

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware_config"
NODE_CONFIGS = sorted((FIRMWARE / "nodes").glob("*.toml"))
KINDS = set(typing.get_args(NodeKind))


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    # load_config lets MACHIKADO_* variables win over the file; test the files themselves.
    for name in [n for n in os.environ if n.startswith("MACHIKADO_")]:
        monkeypatch.delenv(name)


def _fleet() -> dict[str, Any]:
    with (FIRMWARE / "fleet.toml").open("rb") as f:
        return tomllib.load(f)


def _by_id(table: str) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in _fleet()[table]}


def _load(name: str) -> NodeConfig:
    return load_config(FIRMWARE / "nodes" / name)


def test_the_documented_example_node_configs_are_shipped() -> None:
    names = {p.name for p in NODE_CONFIGS}
    assert {
        "restroom-sim.toml",
        "vehicle-sim.toml",
        "station-sim.toml",
        "restroom-pi.toml",
    } <= names


@pytest.mark.parametrize("path", NODE_CONFIGS, ids=lambda p: p.name)
def test_node_config_loads_and_its_node_is_in_the_fleet_with_the_same_kind(path: Path) -> None:
    config = load_config(path)

    nodes = _by_id("nodes")
    assert config.node.id in nodes, f"{path.name}: node {config.node.id} is not in fleet.toml"
    assert nodes[config.node.id]["kind"] == config.node.kind
    if config.node.kind == "vehicle":
        assert nodes[config.node.id]["vehicle_id"] == config.mobility.vehicle_id


@pytest.mark.parametrize("name", ["restroom-sim.toml", "vehicle-sim.toml", "station-sim.toml"])
def test_simulated_node_configs_touch_no_real_hardware(name: str) -> None:
    config = _load(name)

    assert config.simulation.enabled
    assert config.gpio.pin_factory == "mock"
    assert config.ble.backend == "simulated"


def test_raspberry_pi_example_uses_real_hardware_and_tls() -> None:
    config = _load("restroom-pi.toml")

    assert not config.simulation.enabled
    assert (config.gpio.pin_factory, config.ble.backend) == ("lgpio", "bleak")
    assert (config.mqtt.tls, config.mqtt.port) == (True, 8883)
    assert config.mqtt.ca_file is not None
    # The broker ACL confines a node by its username, which must therefore be its node id.
    assert config.mqtt_username == config.node.id


def test_simulated_restroom_has_stalls_a_help_button_and_each_health_device() -> None:
    restroom = _load("restroom-sim.toml").restroom

    assert 2 <= len(restroom.stalls) <= 3
    assert all(stall.pir_pin is not None for stall in restroom.stalls)
    assert restroom.help_button_pin is not None
    assert {d.kind for d in restroom.health_devices} == {"scale", "blood_pressure", "thermometer"}


@pytest.mark.parametrize("table", ["trials", "sites", "nodes"])
def test_fleet_ids_are_unique(table: str) -> None:
    counts = Counter(row["id"] for row in _fleet()[table])
    assert [i for i, n in counts.items() if n > 1] == []


def test_fleet_nodes_reference_existing_trials_and_sites_of_that_trial() -> None:
    trials, sites = _by_id("trials"), _by_id("sites")
    for node in _fleet()["nodes"]:
        assert node["kind"] in KINDS, node
        assert node["trial"] in trials, node
        assert node["site"] in sites, node
        assert sites[node["site"]]["trial"] == node["trial"], node
        assert ("vehicle_id" in node) == (node["kind"] == "vehicle"), node


def test_fleet_sites_belong_to_existing_trials_and_lie_in_tsukuba() -> None:
    trials = _by_id("trials")
    for site in _fleet()["sites"]:
        assert site["trial"] in trials, site
        # Tsukuba spans roughly 35.95-36.25 N, 140.00-140.20 E.
        assert 35.95 < site["lat"] < 36.25, site
        assert 140.0 < site["lon"] < 140.2, site


def test_every_fleet_node_id_can_be_an_mqtt_username_and_topic_level() -> None:
    for node in _fleet()["nodes"]:
        NodeConfig.model_validate({"node": {"id": node["id"], "kind": node["kind"]}})


def test_systemd_unit_runs_the_pi_config_in_the_state_directory_the_config_names() -> None:
    unit = (FIRMWARE / "systemd" / "machikado-edge.service").read_text(encoding="utf-8")
    keys = dict(re.findall(r"^(\w+)=(.*)$", unit, flags=re.MULTILINE))

    assert keys["ExecStart"].endswith("machikado edge run --config /etc/machikado/node.toml")
    assert (keys["Type"], keys["Restart"]) == ("notify", "always")
    assert Path("/var/lib") / keys["StateDirectory"] == _load("restroom-pi.toml").node.data_dir


def test_boot_config_pulls_each_input_of_the_pi_example_the_right_way() -> None:
    text = (FIRMWARE / "raspberrypi" / "config.txt").read_text(encoding="utf-8")
    pulls = {
        int(pin): options.split(",")[1]
        for pins, options in re.findall(r"^gpio=([\d,]+)=(\S+)$", text, flags=re.MULTILINE)
        for pin in pins.split(",")
    }
    restroom = _load("restroom-pi.toml").restroom

    assert "dtparam=watchdog=on" in text.splitlines()
    # Switches and the button close to ground (pull up); PIR outputs drive high (pull down).
    for stall in restroom.stalls:
        assert pulls[int(stall.door_pin)] == "pu", stall.name
        assert stall.pir_pin is not None
        assert pulls[int(stall.pir_pin)] == "pd", stall.name
    assert restroom.help_button_pin is not None
    assert pulls[int(restroom.help_button_pin)] == "pu"


def test_collector_example_loads_and_names_the_shipped_acl_user() -> None:
    cfg = load_collector_config(FIRMWARE / "cloud" / "collector.toml")
    assert cfg.mqtt.username == "collector-1"
    assert cfg.mqtt.tls
    assert cfg.store.kind == "auto"
    acl = (FIRMWARE / "mosquitto" / "acl").read_text(encoding="utf-8")
    assert f"user {cfg.mqtt.username}\n" in acl


def test_collector_systemd_unit_runs_the_collector_config() -> None:
    unit = (FIRMWARE / "systemd" / "machikado-collector.service").read_text(encoding="utf-8")
    assert "cloud collect --config /etc/machikado/collector.toml" in unit
    assert "KillSignal=SIGTERM" in unit


# -- systemd units ------------------------------------------------------------------------------

UNITS = sorted((FIRMWARE / "systemd").glob("*.service"))
#: The hardening of the edge unit, which every unit carries (RestrictAddressFamilies aside).
HARDENING = (
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "NoNewPrivileges",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "RestrictSUIDSGID",
    "RestrictRealtime",
    "RestrictNamespaces",
    "LockPersonality",
)
#: The config each unit runs, by unit name: whose it is, the shipped example, where it goes.
UNIT_CONFIGS = {
    "machikado-edge.service": ("node", "restroom-pi.toml", "/etc/machikado/node.toml"),
    "machikado-collector.service": ("collector", "collector.toml", "/etc/machikado/collector.toml"),
    "machikado-kiosk.service": ("node", "kiosk-pi.toml", "/etc/machikado/kiosk.toml"),
    "machikado-web.service": ("web", "web.toml", "/etc/machikado/web.toml"),
}


def unit_keys(path: Path) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file, by key (a key may repeat), sections merged."""
    keys: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"(\w+)=(.*)", line.strip())
        if match:
            keys.setdefault(match[1], []).append(match[2])
    return keys


def one(keys: dict[str, list[str]], key: str) -> str:
    assert len(keys.get(key, [])) == 1, f"{key} must be given once: {keys.get(key)}"
    return keys[key][0]


def test_every_service_has_a_unit_and_every_unit_a_config() -> None:
    assert sorted(p.name for p in UNITS) == sorted(UNIT_CONFIGS)


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_keeps_its_files_private_and_restarts(unit: Path) -> None:
    keys = unit_keys(unit)
    assert one(keys, "UMask") == "0077"
    assert one(keys, "StateDirectoryMode") == "0700"
    assert one(keys, "Restart") == "always"
    assert one(keys, "KillSignal") == "SIGTERM"


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_carries_the_edge_units_hardening(unit: Path) -> None:
    edge = unit_keys(FIRMWARE / "systemd" / "machikado-edge.service")
    keys = unit_keys(unit)
    for key in HARDENING:
        assert keys.get(key) == edge[key], key
    allowed = set(one(edge, "RestrictAddressFamilies").split())
    assert set(one(keys, "RestrictAddressFamilies").split()) <= allowed


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_passes_secrets_as_credentials_that_its_config_reads(unit: Path) -> None:
    keys = unit_keys(unit)
    for value in keys.get("Environment", []):
        assert not re.search(r"PASSWORD|TOKEN|SECRET", value, flags=re.IGNORECASE), value
    credentials = {v.split(":", 1)[0] for v in keys.get("LoadCredential", [])}
    for value in keys.get("LoadCredential", []):
        assert value.split(":", 1)[1].startswith("/etc/machikado/credentials/"), value

    part, name, installed = UNIT_CONFIGS[unit.name]
    if part == "node":
        node = _load(name)
        secret_files = [node.mqtt.password_file]
        assert str(node.node.data_dir) == f"/var/lib/{one(keys, 'StateDirectory')}"
    elif part == "web":
        web = load_web_config(FIRMWARE / "cloud" / name)
        secret_files = [web.database.password_file, web.store.password_file]
    else:
        cfg = load_collector_config(FIRMWARE / "cloud" / name)
        secret_files = [cfg.mqtt.password_file, cfg.store.password_file]
    named = set()
    for path in secret_files:
        assert path is not None
        assert str(path).startswith("$CREDENTIALS_DIRECTORY/"), path
        named.add(str(path).removeprefix("$CREDENTIALS_DIRECTORY/"))
    assert named == credentials
    assert one(keys, "ExecStart").endswith(f"--config {installed}")


def test_web_example_listens_on_loopback_behind_a_proxy_with_secure_cookies() -> None:
    web = load_web_config(FIRMWARE / "cloud" / "web.toml")
    assert web.web.host == "127.0.0.1"
    assert web.web.cookies_secure
    assert web.store.url is not None
    assert web.store.url.startswith("https://")
    assert web.database.url.startswith("postgresql+psycopg://")
    assert str(web.fleet.manifest) == "/etc/machikado/fleet.toml"


def test_collector_unit_signals_only_the_collector_on_stop() -> None:
    keys = unit_keys(FIRMWARE / "systemd" / "machikado-collector.service")
    assert one(keys, "KillMode") == "mixed"
    assert one(keys, "PrivateDevices") == "true"


def test_kiosk_unit_owns_a_vt_and_is_watched_by_systemd() -> None:
    keys = unit_keys(FIRMWARE / "systemd" / "machikado-kiosk.service")
    assert one(keys, "ExecStart").endswith("machikado kiosk --config /etc/machikado/kiosk.toml")
    assert (one(keys, "Type"), one(keys, "NotifyAccess")) == ("notify", "main")
    assert int(one(keys, "WatchdogSec")) > 0
    assert one(keys, "TTYPath") == "/dev/tty1"
    assert one(keys, "Conflicts") == "getty@tty1.service"
    assert "SDL_VIDEODRIVER=kmsdrm" in keys["Environment"]
    assert _load("kiosk-pi.toml").kiosk.fullscreen


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_verify_finds_nothing_to_say(unit: Path, tmp_path: Path) -> None:
    # verify wants the program to exist: the one installed with the project here.
    machikado = Path(sys.executable).with_name("machikado")
    assert machikado.exists(), machikado
    copy = tmp_path / unit.name
    copy.write_text(
        unit.read_text(encoding="utf-8").replace("/usr/local/bin/machikado", str(machikado)),
        encoding="utf-8",
    )
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


# -- TLS in the shipped configs -----------------------------------------------------------------


@pytest.mark.parametrize("path", NODE_CONFIGS, ids=lambda p: p.name)
def test_node_configs_use_tls_off_the_loopback(path: Path) -> None:
    mqtt = load_config(path).mqtt
    assert mqtt.tls or is_loopback(mqtt.host), path.name
    assert not mqtt.allow_insecure


def test_collector_example_uses_tls_to_the_broker_and_https_to_the_store() -> None:
    cfg = load_collector_config(FIRMWARE / "cloud" / "collector.toml")
    assert cfg.mqtt.tls
    assert cfg.store.url is not None
    assert cfg.store.url.startswith("https://")
    assert not cfg.mqtt.allow_insecure
    assert not cfg.store.allow_insecure
