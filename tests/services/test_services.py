"""The real Mosquitto and InfluxDB fixtures do what the other tests rely on."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.services import InfluxServer, MosquittoServer, ServiceError
from tests.services.clients import RecordingClient

pytestmark = pytest.mark.integration


def _topic() -> str:
    return f"test/{uuid.uuid4().hex}"


def test_qos1_message_round_trips_through_the_broker(mosquitto: MosquittoServer) -> None:
    topic = _topic()
    with RecordingClient(mosquitto) as sub, RecordingClient(mosquitto) as pub:
        assert not sub.subscribe(topic, qos=1).is_failure
        assert not pub.publish(topic, b"hello", qos=1).is_failure
        msg = sub.wait_for_message(topic)
    assert (msg.payload, msg.qos) == (b"hello", 1)


def test_persistent_subscriber_gets_message_queued_across_a_broker_restart(
    mosquitto: MosquittoServer,
) -> None:
    topic = _topic()
    port = mosquitto.port

    def session() -> RecordingClient:
        return RecordingClient(
            mosquitto, client_id="collector-1", clean_start=False, session_expiry_s=3600
        )

    with session() as sub:
        sub.subscribe(topic, qos=1)
    # The subscriber is offline; the PUBACK means the broker has queued the message for it.
    with RecordingClient(mosquitto) as pub:
        assert not pub.publish(topic, b"while you were away", qos=1).is_failure

    mosquitto.restart()

    assert mosquitto.port == port
    with session() as sub:
        assert sub.wait_for_message(topic).payload == b"while you were away"


def test_broker_that_cannot_start_fails_with_its_own_error(services_dir: Path) -> None:
    broker = MosquittoServer(services_dir / "bad-conf", extra_conf="no_such_option on")
    with pytest.raises(ServiceError, match="no_such_option"):
        broker.start()
    assert not broker.is_running


def test_stopped_broker_refuses_connections(mosquitto: MosquittoServer) -> None:
    mosquitto.stop()
    assert not mosquitto.is_running
    with pytest.raises(ConnectionRefusedError):
        RecordingClient(mosquitto).connect()


def test_influx_stores_a_written_point_and_returns_it(influxdb: InfluxServer) -> None:
    assert influxdb.version.startswith("1.")
    influxdb.query("CREATE DATABASE telemetry")
    influxdb.write("telemetry", "visit,node=rr-01 duration_s=182.5 1700000000000000000")

    result = influxdb.query("SELECT duration_s FROM visit", db="telemetry", epoch="ns")

    series = result["results"][0]["series"][0]
    assert series["values"] == [[1700000000000000000, 182.5]]


def test_influx_keeps_data_across_a_restart(influxdb: InfluxServer) -> None:
    influxdb.query("CREATE DATABASE telemetry")
    influxdb.write("telemetry", "occupancy,node=rr-01 occupied=true 1700000000000000000")

    influxdb.restart()

    result = influxdb.query(
        "SELECT occupied FROM occupancy WHERE \"node\" = 'rr-01'", db="telemetry"
    )
    assert result["results"][0]["series"][0]["values"] == [["2023-11-14T22:13:20Z", True]]


def test_influx_refused_write_names_the_problem(influxdb: InfluxServer) -> None:
    with pytest.raises(ServiceError, match="database not found"):
        influxdb.write("missing", "visit duration_s=1 1700000000000000000")
