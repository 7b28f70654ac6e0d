"""A node talks to a broker off this machine only over TLS, unless its config says otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import load_config
from edge.errors import ConfigError

NODE = '[node]\nid = "rr-01"\nkind = "restroom"\n'
REMOTE = ["broker.city.example", "10.0.0.5", "192.168.1.20", "2001:db8::1", "localhost.evil.org"]
LOOPBACK = ["localhost", "127.0.0.1", "127.8.9.10", "::1", "LOCALHOST"]


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MACHIKADO_MQTT__HOST", raising=False)
    monkeypatch.delenv("MACHIKADO_MQTT__TLS", raising=False)


def write(tmp_path: Path, mqtt: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f"{NODE}[mqtt]\n{mqtt}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("host", REMOTE)
def test_clear_text_to_a_broker_off_the_loopback_is_a_one_line_error(
    tmp_path: Path, host: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, f'host = "{host}"\ntls = false'))
    message = str(caught.value)
    assert "\n" not in message
    assert "mqtt: tls is false" in message
    assert repr(host) in message
    assert "allow_insecure" in message


@pytest.mark.parametrize("host", LOOPBACK)
def test_clear_text_to_the_loopback_is_allowed(tmp_path: Path, host: str) -> None:
    assert not load_config(write(tmp_path, f'host = "{host}"')).mqtt.tls


@pytest.mark.parametrize("host", REMOTE)
def test_tls_or_allow_insecure_makes_a_remote_broker_acceptable(tmp_path: Path, host: str) -> None:
    assert load_config(write(tmp_path, f'host = "{host}"\ntls = true')).mqtt.tls
    insecure = load_config(write(tmp_path, f'host = "{host}"\nallow_insecure = true'))
    assert (insecure.mqtt.tls, insecure.mqtt.allow_insecure) == (False, True)


def test_an_environment_override_to_a_remote_broker_needs_tls_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MACHIKADO_MQTT__HOST", "broker.city.example")
    with pytest.raises(ConfigError, match="tls is false"):
        load_config(write(tmp_path, 'host = "127.0.0.1"'))
    monkeypatch.setenv("MACHIKADO_MQTT__TLS", "true")
    assert load_config(write(tmp_path, 'host = "127.0.0.1"')).mqtt.host == "broker.city.example"
