"""The node config: parsed once, every bad key named, the environment overriding the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge.config import NodeConfig, load_config
from edge.errors import ConfigError

MINIMAL = '[node]\nid = "rr-01"\nkind = "restroom"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.mqtt.port == 1883
    assert cfg.mqtt_username == "rr-01", "the MQTT username defaults to the node id"
    assert cfg.outbox_path == Path("/var/lib/machikado/outbox.sqlite")
    assert cfg.outbox.when_full == "drop_oldest"


def test_every_bad_key_is_named_in_one_error(tmp_path: Path) -> None:
    text = MINIMAL + '[mqtt]\nport = "eighty"\nhots = "x"\n[outbox]\nwhen_full = "panic"\n'
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    message = str(err.value)
    assert "mqtt.port" in message
    assert "mqtt.hots: unknown key" in message
    assert "outbox.when_full" in message
    assert str(tmp_path / "node.toml") in message


def test_environment_overrides_the_file_key_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MACHIKADO_MQTT__PORT", "8883")
    monkeypatch.setenv("MACHIKADO_OUTBOX__COMMIT_WINDOW_MS", "500")
    cfg = load_config(
        write(tmp_path, MINIMAL + '[mqtt]\nhost = "broker.city"\nport = 1883\ntls = true\n')
    )
    assert (cfg.mqtt.host, cfg.mqtt.port) == ("broker.city", 8883)
    assert cfg.outbox.commit_window_ms == 500


def test_a_bad_environment_value_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MACHIKADO_MQTT__PORT", "99999")
    with pytest.raises(ConfigError, match=r"mqtt\.port"):
        load_config(write(tmp_path, MINIMAL))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[node\nid=1", "not valid TOML"),
        ('[node]\nid = "RR 01"\nkind = "restroom"\n', "node.id"),
        ('[node]\nid = "rr-01"\nkind = "toaster"\n', "node.kind"),
        (MINIMAL + "[mqtt]\nreconnect_min_s = 10\nreconnect_max_s = 1\n", "reconnect_max_s"),
        (MINIMAL + '[mqtt]\npassword = "a"\npassword_file = "/p"\n', "not both"),
        ("", "node: Field required"),
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path: Path, text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(why)):
        load_config(write(tmp_path, text))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(tmp_path / "absent.toml")


def test_config_is_frozen_and_its_digest_ignores_the_password() -> None:
    a = NodeConfig.model_validate(
        {"node": {"id": "rr-01", "kind": "restroom"}, "mqtt": {"password": "one"}}
    )
    b = NodeConfig.model_validate(
        {"node": {"id": "rr-01", "kind": "restroom"}, "mqtt": {"password": "two"}}
    )
    c = NodeConfig.model_validate(
        {"node": {"id": "rr-01", "kind": "restroom"}, "mqtt": {"port": 1884}}
    )
    assert a.digest() == b.digest() != c.digest()
    with pytest.raises(ValueError, match="frozen"):
        a.mqtt.port = 1  # type: ignore[misc]
