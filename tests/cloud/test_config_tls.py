"""The collector reaches a broker or a store off this machine only over TLS, unless told."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.config import load_config
from cloud.errors import ConfigError

REMOTE = ["broker.city.example", "10.0.0.5", "2001:db8::1"]
LOOPBACK = ["localhost", "127.0.0.1", "127.0.0.2", "::1"]


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("MQTT__HOST", "MQTT__TLS", "STORE__URL", "STORE__KIND"):
        monkeypatch.delenv(f"MACHIKADO_{key}", raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("host", REMOTE)
def test_clear_text_to_a_remote_broker_is_a_one_line_error(tmp_path: Path, host: str) -> None:
    message = _error(write(tmp_path, f'[mqtt]\nhost = "{host}"\n'))
    assert "mqtt: tls is false" in message
    assert "allow_insecure" in message


@pytest.mark.parametrize("host", REMOTE)
def test_a_remote_broker_over_tls_or_explicitly_insecure_is_accepted(
    tmp_path: Path, host: str
) -> None:
    assert load_config(write(tmp_path, f'[mqtt]\nhost = "{host}"\ntls = true\n')).mqtt.tls
    cfg = load_config(write(tmp_path, f'[mqtt]\nhost = "{host}"\nallow_insecure = true\n'))
    assert cfg.mqtt.allow_insecure


@pytest.mark.parametrize("host", LOOPBACK)
def test_the_loopback_needs_no_tls(tmp_path: Path, host: str) -> None:
    url = f"http://[{host}]:8086" if ":" in host else f"http://{host}:8086"
    cfg = load_config(
        write(tmp_path, f'[mqtt]\nhost = "{host}"\n[store]\nkind = "influx_v1"\nurl = "{url}"\n')
    )
    assert cfg.store.url == url


@pytest.mark.parametrize("kind", ["influx_v1", "auto"])
def test_an_http_store_off_the_loopback_is_a_one_line_error(tmp_path: Path, kind: str) -> None:
    text = f'[store]\nkind = "{kind}"\nurl = "http://influxdb.city.example:8086"\n'
    message = _error(write(tmp_path, text))
    assert "store: url 'http://influxdb.city.example:8086' is http://" in message
    assert "allow_insecure" in message


def test_an_https_store_or_an_explicitly_insecure_one_is_accepted(tmp_path: Path) -> None:
    https = '[store]\nkind = "influx_v1"\nurl = "https://influxdb.city.example:8086"\n'
    assert load_config(write(tmp_path, https)).store.url == "https://influxdb.city.example:8086"
    insecure = '[store]\nkind = "influx_v1"\nurl = "http://10.1.2.3:8086"\nallow_insecure = true\n'
    assert load_config(write(tmp_path, insecure)).store.allow_insecure
