"""The shipped broker ACL keeps every node inside its own subtree, on the real Mosquitto 2.0.11.

What mosquitto 2.0.11 answers, as observed here:

- a denied QoS 1 PUBLISH over MQTT 5 gets a PUBACK with reason code 135 (0x87, "Not
  authorized"), so a node can tell that it is misconfigured;
- over MQTT 3.1.1 the same PUBLISH gets a plain PUBACK, indistinguishable from success, and is
  dropped: the reason the node prefers MQTT 5;
- a SUBSCRIBE outside the subject's ACL is granted (SUBACK QoS 1): with ``acl_file`` mosquitto
  never refuses a subscription, it refuses delivery of each message the subscriber may not read
  (eclipse-mosquitto/mosquitto#2042). The tests therefore pin the delivery, which is what leaks.

Absence is proven by a marker: after the denied message, a permitted one is published by the same
client; messages from one client reach a subscriber in order, so once the marker has arrived the
denied message would have too.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

import pytest

from tests.services import MosquittoFactory, MosquittoServer, ServiceError
from tests.services.clients import RecordingClient
from tests.services.process import find_binary

pytestmark = pytest.mark.integration

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware_config"
SHIPPED_ACL = FIRMWARE / "mosquitto" / "acl"
SHIPPED_CONF = FIRMWARE / "mosquitto" / "mosquitto.conf"
PASSWORDS = {
    "rr-01": "rr-01-secret",
    "rr-02": "rr-02-secret",
    "collector-1": "collector-1-secret",
    "collector-2": "collector-2-secret",
}
#: A test-only user who may read every topic, so that "not delivered" also covers topics outside
#: the contract, which no shipped user may read. The shipped rules are used unchanged before it.
OBSERVER_ACL = "\n# Test only: reads everything, to prove that denied messages go nowhere.\n"
OBSERVER_ACL += "user observer\ntopic read #\n"
OBSERVER_PASSWORD = "observer-secret"

NOT_AUTHORIZED = 135


@pytest.fixture
def broker(mosquitto_factory: MosquittoFactory, tmp_path: Path) -> MosquittoServer:
    acl = tmp_path / "acl"
    acl.write_text(SHIPPED_ACL.read_text(encoding="utf-8") + OBSERVER_ACL, encoding="utf-8")
    return mosquitto_factory(users={**PASSWORDS, "observer": OBSERVER_PASSWORD}, acl_file=acl)


def _client(
    broker: MosquittoServer,
    user: str,
    protocol: Literal["5", "3.1.1"] = "5",
    *,
    client_id: str | None = None,
) -> RecordingClient:
    password = OBSERVER_PASSWORD if user == "observer" else PASSWORDS[user]
    return RecordingClient(
        broker, username=user, password=password, protocol=protocol, client_id=client_id
    )


@pytest.fixture
def observer(broker: MosquittoServer) -> Iterator[RecordingClient]:
    with _client(broker, "observer") as client:
        client.subscribe("#")
        yield client


def test_node_publishes_in_its_own_subtree_and_the_collector_receives_it(
    broker: MosquittoServer,
) -> None:
    with _client(broker, "collector-1") as collector, _client(broker, "rr-01") as node:
        collector.subscribe("machikado/v1/#")

        puback = node.publish("machikado/v1/rr-01/data", b"envelope")

        assert not puback.is_failure
        assert collector.wait_for_message("machikado/v1/rr-01/data").payload == b"envelope"


@pytest.mark.parametrize("topic", ["machikado/v1/rr-02/data", "machikado/other"])
def test_node_publishing_outside_its_subtree_is_refused_and_delivered_to_nobody(
    broker: MosquittoServer, observer: RecordingClient, topic: str
) -> None:
    with _client(broker, "collector-1") as collector, _client(broker, "rr-01") as node:
        collector.subscribe("machikado/v1/#")

        puback = node.publish(topic, b"forged")
        node.publish("machikado/v1/rr-01/state", b"marker")

        assert puback.is_failure
        assert puback.value == NOT_AUTHORIZED
        collector.wait_for_message("machikado/v1/rr-01/state")
        observer.wait_for_message("machikado/v1/rr-01/state")
        assert topic not in collector.topics_received()
        assert topic not in observer.topics_received()


def test_node_subscribed_to_another_nodes_subtree_receives_nothing_from_it(
    broker: MosquittoServer,
) -> None:
    with (
        _client(broker, "rr-01") as rr01,
        _client(broker, "rr-02") as rr02,
        _client(broker, "collector-1") as collector,
    ):
        # Granted by mosquitto 2.0.11 (see the module docstring); the delivery is what is denied.
        rr01.subscribe("machikado/v1/rr-02/#")
        rr01.subscribe("machikado/v1/+/birth")
        rr01.subscribe("machikado/v1/rr-01/#")

        assert not rr02.publish("machikado/v1/rr-02/data", b"rr-02 readings").is_failure
        assert not rr02.publish("machikado/v1/rr-02/birth", b"rr-02 birth").is_failure
        # Mosquitto routes a message before it acknowledges it, so after rr-02's PUBACKs any
        # delivery to rr-01 is queued ahead of the marker rr-01 is sent next.
        collector.publish("machikado/v1/rr-01/receipt", b"marker")

        rr01.wait_for_message("machikado/v1/rr-01/receipt")
        assert rr01.topics_received() == ["machikado/v1/rr-01/receipt"]


def test_collector_sends_receipts_and_commands_that_the_node_receives(
    broker: MosquittoServer,
) -> None:
    with _client(broker, "rr-01") as node, _client(broker, "collector-1") as collector:
        node.subscribe("machikado/v1/rr-01/#")

        assert not collector.publish("machikado/v1/rr-01/receipt", b"stored 1-17").is_failure
        assert not collector.publish("machikado/v1/rr-01/cmd/rebirth", b"").is_failure

        assert node.wait_for_message("machikado/v1/rr-01/receipt").payload == b"stored 1-17"
        node.wait_for_message("machikado/v1/rr-01/cmd/rebirth")


@pytest.mark.parametrize("topic", ["machikado/v1/rr-01/data", "machikado/v1/rr-01/birth"])
def test_collector_cannot_publish_in_a_nodes_name(
    broker: MosquittoServer, observer: RecordingClient, topic: str
) -> None:
    with _client(broker, "collector-1") as collector:
        puback = collector.publish(topic, b"forged")
        collector.publish("machikado/v1/rr-01/receipt", b"marker")

        assert puback.value == NOT_AUTHORIZED
        observer.wait_for_message("machikado/v1/rr-01/receipt")
        assert topic not in observer.topics_received()


@pytest.mark.parametrize(
    "topic",
    [
        "machikado/v1/rr-01/junk",
        "machikado/v1/rr-01/birth/2",
        "machikado/v1/rr-01/data/x",
        "machikado/v1/rr-01/receipt",
        "machikado/v1/rr-01/cmd/rebirth",
        "machikado/v1/rr-01/consult/reply",
        "machikado/v1/rr-01/consult/request/more",
    ],
)
def test_a_node_cannot_retain_or_publish_on_other_topics_of_its_own_subtree(
    broker: MosquittoServer, topic: str
) -> None:
    with _client(broker, "rr-01") as node:
        assert not node.publish("machikado/v1/rr-01/birth", b"birth", retain=True).is_failure
        assert not node.publish("machikado/v1/rr-01/state", b"online", retain=True).is_failure

        assert node.publish(topic, b"kept forever?", retain=True).value == NOT_AUTHORIZED

    with _client(broker, "observer") as late:
        # Retained messages come with each SUBACK, in the order the subscriptions are made: once
        # the birth's has come, one kept on ``topic`` would have come before it.
        late.subscribe(topic)
        late.subscribe("machikado/v1/rr-01/birth")
        assert late.wait_for_message("machikado/v1/rr-01/birth").retain
        assert late.topics_received() == ["machikado/v1/rr-01/birth"]


def test_a_node_publishes_exactly_its_contract_topics_and_reads_what_the_cloud_sends_it(
    broker: MosquittoServer, observer: RecordingClient
) -> None:
    with _client(broker, "rr-01") as node, _client(broker, "collector-1") as collector:
        node.subscribe("machikado/v1/rr-01/#")
        for kind in ("birth", "state", "data", "consult/request"):
            assert not node.publish(f"machikado/v1/rr-01/{kind}", kind).is_failure
            observer.wait_for_message(f"machikado/v1/rr-01/{kind}")
        for kind in ("receipt", "cmd/content_pack"):
            assert not collector.publish(f"machikado/v1/rr-01/{kind}", kind).is_failure
            node.wait_for_message(f"machikado/v1/rr-01/{kind}")
        # It does not even read back what it published itself.
        assert node.topics_received() == [
            "machikado/v1/rr-01/receipt",
            "machikado/v1/rr-01/cmd/content_pack",
        ]


def test_the_collector_reads_no_consultation_topic(
    broker: MosquittoServer, observer: RecordingClient
) -> None:
    with _client(broker, "collector-1") as collector, _client(broker, "rr-01") as kiosk:
        collector.subscribe("machikado/v1/#")

        assert not kiosk.publish("machikado/v1/rr-01/consult/request", b"sealed").is_failure
        kiosk.publish("machikado/v1/rr-01/data", b"marker")

        collector.wait_for_message("machikado/v1/rr-01/data")
        observer.wait_for_message("machikado/v1/rr-01/consult/request")
        assert "machikado/v1/rr-01/consult/request" not in collector.topics_received()


def test_mqtt311_denied_publish_looks_acked_but_is_delivered_to_nobody(
    broker: MosquittoServer, observer: RecordingClient
) -> None:
    # MQTT 3.1.1's PUBACK has no reason code: the broker acknowledges and drops the message, so
    # the node cannot tell it is publishing into the void. This is why the node prefers MQTT 5.
    with (
        _client(broker, "collector-1", "3.1.1") as collector,
        _client(broker, "rr-01", "3.1.1") as node,
    ):
        collector.subscribe("machikado/v1/#")

        puback = node.publish("machikado/v1/rr-02/data", b"forged")
        node.publish("machikado/v1/rr-01/state", b"marker")

        assert not puback.is_failure
        collector.wait_for_message("machikado/v1/rr-01/state")
        observer.wait_for_message("machikado/v1/rr-01/state")
        assert "machikado/v1/rr-02/data" not in collector.topics_received()
        assert "machikado/v1/rr-02/data" not in observer.topics_received()


class ShippedConfigBroker(MosquittoServer):
    """The production mosquitto.conf as shipped, its paths moved into ``tmp_dir``, on a free port.

    The broker's certificate is a fresh self-signed one for 127.0.0.1, which is also the CA.
    """

    def __init__(self, tmp_dir: Path, *, users: Mapping[str, str], acl_file: Path) -> None:
        super().__init__(tmp_dir, users=users, acl_file=acl_file)
        self.cert, self.key = self.tmp_dir / "server.crt", self.tmp_dir / "server.key"
        openssl = find_binary("openssl", "openssl")
        argv = [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ]
        argv += ["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        argv += ["-addext", "subjectAltName=IP:127.0.0.1"]
        subprocess.run(
            [*argv, "-keyout", str(self.key), "-out", str(self.cert)],
            check=True,
            capture_output=True,
        )
        self._give(self.cert, 0o644)
        self._give(self.key, 0o600)
        self.tls_ca = self.cert
        # Written after mosquitto drops privileges, like the log.
        self.pid_file = self.tmp_dir / "mosquitto.pid"
        self.pid_file.touch()
        self._give(self.pid_file, 0o644)

    def _write_config(self) -> list[str]:
        moves = {
            "listener 8883": f"listener {self.port} {self.host}",
            "/etc/mosquitto/certs/ca.crt": str(self.cert),
            "/etc/mosquitto/certs/server.crt": str(self.cert),
            "/etc/mosquitto/certs/server.key": str(self.key),
            "/etc/mosquitto/passwd": str(self.password_file),
            "/etc/mosquitto/acl": str(self.acl_file),
            "/var/lib/mosquitto/": f"{self.persistence_dir}/",
            "/var/log/mosquitto/mosquitto.log": str(self.log_path),
            "/run/mosquitto/mosquitto.pid": str(self.pid_file),
        }
        text = SHIPPED_CONF.read_text(encoding="utf-8")
        for old, new in moves.items():
            if old not in text:
                raise ServiceError(f"{SHIPPED_CONF}: no {old!r} in it; update this test")
            text = text.replace(old, new)
        self.conf_path.write_text(text, encoding="utf-8")
        return [self._binary, "-c", str(self.conf_path)]


@pytest.fixture
def production_broker(services_dir: Path) -> Iterator[ShippedConfigBroker]:
    tmp_dir = Path(tempfile.mkdtemp(prefix="shipped-conf-", dir=services_dir))
    tmp_dir.chmod(0o711)
    with ShippedConfigBroker(tmp_dir, users=PASSWORDS, acl_file=SHIPPED_ACL) as broker:
        yield broker


def test_shipped_production_config_serves_nodes_over_tls_under_the_acl(
    production_broker: ShippedConfigBroker,
) -> None:
    with (
        _client(production_broker, "collector-1") as collector,
        _client(production_broker, "rr-01") as node,
    ):
        collector.subscribe("machikado/v1/#")

        assert not node.publish("machikado/v1/rr-01/data", b"envelope").is_failure
        assert node.publish("machikado/v1/rr-02/data", b"forged").value == NOT_AUTHORIZED
        assert collector.wait_for_message("machikado/v1/rr-01/data").payload == b"envelope"


def test_shipped_production_config_refuses_anonymous_clients(
    production_broker: ShippedConfigBroker,
) -> None:
    with pytest.raises(ServiceError, match="connection refused"):
        RecordingClient(production_broker).connect()


@pytest.mark.parametrize(
    ("victim", "intruder"), [("rr-01", "rr-02"), ("collector-1", "collector-2")]
)
def test_a_client_using_another_users_client_id_does_not_knock_it_off(
    production_broker: ShippedConfigBroker, victim: str, intruder: str
) -> None:
    with _client(production_broker, victim, client_id=victim) as held:
        held.subscribe(f"machikado/v1/{victim}/cmd/#" if victim.startswith("rr") else "#")
        with _client(production_broker, intruder, client_id=victim) as other:
            # Connected, under its own user name: it publishes as itself, not as the victim.
            assert not other.publish(f"machikado/v1/{intruder}/state", b"online").is_failure
        with _client(production_broker, "collector-2") as cloud:
            cloud.publish(f"machikado/v1/{victim}/cmd/ping", b"still there?")

        held.wait_for_message(f"machikado/v1/{victim}/cmd/ping")
        assert held.disconnects == []


def test_shipped_production_config_bounds_queues_memory_and_client_ids(
    production_broker: ShippedConfigBroker,
) -> None:
    # The broker started from this very file (the fixture), so mosquitto 2.0.11 knows each
    # option; here, that the bounds are there and sized as the comments say.
    options = dict(
        line.split(None, 1)
        for line in SHIPPED_CONF.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    assert options["use_username_as_clientid"] == "true"
    queued_bytes = int(options["max_queued_bytes"])
    assert 0 < queued_bytes <= 256 * 2**20
    assert 0 < int(options["max_queued_messages"]) <= queued_bytes // 256
    assert 4 * queued_bytes < int(options["memory_limit"]) <= 4 * 2**30
    with _client(production_broker, "rr-01") as node:
        assert not node.publish("machikado/v1/rr-01/state", b"online").is_failure
    assert "Error" not in production_broker.log_path.read_text(encoding="utf-8")
