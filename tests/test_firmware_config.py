"""The shipped firmware_config/ files load, and agree with each other and with the fleet."""

from __future__ import annotations

import os
import re
import tomllib
import typing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cloud.config import load_config as load_collector_config
from edge.config import NodeConfig, load_config
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
    assert cfg.mqtt.username == "collector"
    assert cfg.mqtt.tls
    assert cfg.store.kind == "auto"
    acl = (FIRMWARE / "mosquitto" / "acl").read_text(encoding="utf-8")
    assert f"user {cfg.mqtt.username}\n" in acl


def test_collector_systemd_unit_runs_the_collector_config() -> None:
    unit = (FIRMWARE / "systemd" / "machikado-collector.service").read_text(encoding="utf-8")
    assert "cloud collect --config /etc/machikado/collector.toml" in unit
    assert "KillSignal=SIGTERM" in unit
