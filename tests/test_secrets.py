"""Passwords and tokens: read from files or systemd credentials, and never shown, not in a
repr, a dump, a log or an error message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from cloud.config import load_config as load_collector_config
from cloud.store.settings import StoreSettings
from edge.config import load_config as load_node_config
from machikado.settings import SecretFileError
from protocol.errors import MachikadoError

SECRET = "pw-7f3a-do-not-show"
NODE = '[node]\nid = "rr-01"\nkind = "restroom"\n'


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("MACHIKADO_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def credentials(tmp_path: Path, **files: str) -> Path:
    """A directory like the one systemd makes for a unit's LoadCredential= files."""
    directory = tmp_path / "credentials"
    directory.mkdir(mode=0o700)
    for name, value in files.items():
        (directory / name.replace("_", "-")).write_text(value + "\n", encoding="utf-8")
    return directory


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_node_reads_its_mqtt_password_from_the_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials(tmp_path, mqtt_password=SECRET)))
    text = NODE + '[mqtt]\npassword_file = "$CREDENTIALS_DIRECTORY/mqtt-password"\n'
    cfg = load_node_config(write(tmp_path, "node.toml", text))

    assert cfg.mqtt.secret().get_secret_value() == SECRET
    assert SECRET not in repr(cfg)
    assert SECRET not in cfg.model_dump_json()


def test_collector_and_store_read_their_secrets_from_systemd_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = credentials(
        tmp_path, mqtt_password="mqtt-" + SECRET, store_password="db-" + SECRET, store_token="tk"
    )
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    text = (
        '[mqtt]\nusername = "collector"\npassword_file = "${CREDENTIALS_DIRECTORY}/mqtt-password"\n'
        '[store]\nkind = "influx_v1"\nurl = "http://127.0.0.1:8086"\nusername = "machikado"\n'
        'password_file = "$CREDENTIALS_DIRECTORY/store-password"\n'
        'token_file = "$CREDENTIALS_DIRECTORY/store-token"\n'
    )
    cfg = load_collector_config(write(tmp_path, "collector.toml", text))

    assert cfg.mqtt.secret().get_secret_value() == "mqtt-" + SECRET
    password = cfg.store.password_secret()
    token = cfg.store.token_secret()
    assert password is not None
    assert token is not None
    assert (password.get_secret_value(), token.get_secret_value()) == ("db-" + SECRET, "tk")
    assert SECRET not in repr(cfg)


def test_a_credential_outside_systemd_is_a_one_line_error_naming_the_key(tmp_path: Path) -> None:
    text = NODE + '[mqtt]\npassword_file = "$CREDENTIALS_DIRECTORY/mqtt-password"\n'
    cfg = load_node_config(write(tmp_path, "node.toml", text))
    with pytest.raises(SecretFileError) as caught:
        cfg.mqtt.secret()
    message = str(caught.value)
    assert message.startswith("mqtt.password_file: $CREDENTIALS_DIRECTORY/mqtt-password")
    assert "LoadCredential=" in message
    assert "\n" not in message


def test_an_unreadable_secret_file_names_key_and_file_but_not_a_secret(tmp_path: Path) -> None:
    settings = StoreSettings(
        kind="influx_v1", url="http://127.0.0.1:8086", password_file=tmp_path / "gone"
    )
    with pytest.raises(SecretFileError, match=r"^store\.password_file: cannot read .*gone"):
        settings.password_secret()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("node.toml", NODE + f'[mqtt]\npassword = "{SECRET}"\nport = 0\n'),
        ("node.toml", NODE + f'[mqtt]\npassword = "{SECRET}"\npassword_file = "/p"\n'),
        ("collector.toml", f'[mqtt]\npassword = "{SECRET}"\nhost = "broker.example"\n'),
        ("collector.toml", f'[store]\nkind = "auto"\nurl = "http://x"\npassword = "{SECRET}"\n'),
    ],
)
def test_a_bad_config_error_never_repeats_a_secret(tmp_path: Path, name: str, text: str) -> None:
    load = load_node_config if name == "node.toml" else load_collector_config
    with pytest.raises(MachikadoError, match="config ") as caught:
        load(write(tmp_path, name, text))
    assert SECRET not in str(caught.value)


def test_a_bad_store_settings_object_never_repeats_its_secret_in_the_error() -> None:
    with pytest.raises(ValueError, match="https://") as caught:
        StoreSettings(kind="influx_v2", url="http://x", password=SecretStr(SECRET), token=SECRET)
    assert SECRET not in str(caught.value)


def test_node_with_an_unreadable_credential_stops_at_once_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    text = (
        NODE.replace('kind = "restroom"\n', f'kind = "kiosk"\ndata_dir = "{data}"\n')
        + '[mqtt]\nhost = "127.0.0.1"\npassword_file = "$CREDENTIALS_DIRECTORY/mqtt-password"\n'
    )
    config = write(tmp_path, "node.toml", text)
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    done = subprocess.run(
        [sys.executable, "-m", "machikado.cli", "edge", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2
    assert not data.exists(), "the node stopped before it made an outbox"
    assert done.stderr.strip().splitlines() == [
        "machikado: mqtt.password_file: $CREDENTIALS_DIRECTORY/mqtt-password is a systemd "
        "credential, but $CREDENTIALS_DIRECTORY is not set (start it from its unit, which "
        "passes the file with LoadCredential=)"
    ]
