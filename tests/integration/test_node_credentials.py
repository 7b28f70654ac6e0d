"""A node started as its systemd unit starts it: the broker password comes as a credential file
(``LoadCredential=``), the node logs in with it, and the password is in no log."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.nodes import NodeProcess, wait_for, write_node_config
from tests.services import MosquittoFactory

pytestmark = pytest.mark.integration

SECRET = "rr-01-cred-8c1d"


def test_node_logs_in_with_the_password_from_its_systemd_credential(
    mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> None:
    broker = mosquitto_factory(users={"rr-01": SECRET})
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    (creds / "mqtt-password").write_text(SECRET + "\n", encoding="utf-8")
    env = {
        "CREDENTIALS_DIRECTORY": str(creds),
        "MACHIKADO_MQTT__PASSWORD_FILE": "$CREDENTIALS_DIRECTORY/mqtt-password",
    }
    node = NodeProcess(write_node_config(tmp_path, port=broker.port, rate=20), env=env).start()
    try:
        wait_for("the node logged in", lambda: bool(node.link().get("connected")), 20)
        wait_for("readings receipted or sent", lambda: node.stats().sent > 0, 20)
    finally:
        assert node.terminate() == 0
    assert SECRET not in node.log.read_text()
    assert "mqtt_connect_refused" not in node.log.read_text()
