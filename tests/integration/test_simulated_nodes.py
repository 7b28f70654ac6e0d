"""The shipped simulated node configs run as real processes and report what their sensors saw.

Each `firmware_config/nodes/*-sim.toml` is started with `machikado edge run`, its broker port and
data dir overridden through MACHIKADO_* environment variables as an operator would, and its
scenario sped up. What reaches the broker must be valid envelopes carrying that kind's readings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.standin import ReceiptStandin
from protocol import parse_envelope
from tests.integration.nodes import NodeProcess, wait_for
from tests.services import MosquittoServer
from tests.services.clients import RecordingClient

pytestmark = pytest.mark.integration

NODES = Path(__file__).resolve().parents[2] / "firmware_config" / "nodes"

EXPECTED = {
    "restroom-sim.toml": {"visit", "occupancy", "health_check", "node_health"},
    "vehicle-sim.toml": {"trip", "ride", "node_health"},
    "station-sim.toml": {"vehicle_arrived", "parked_vehicle", "node_health"},
}


@pytest.mark.parametrize("config", sorted(EXPECTED))
def test_simulated_node_reports_its_kind_of_readings(
    config: str, mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    env = {
        "MACHIKADO_MQTT__HOST": mosquitto.host,
        "MACHIKADO_MQTT__PORT": str(mosquitto.port),
        "MACHIKADO_NODE__DATA_DIR": str(tmp_path / "data"),
        "MACHIKADO_SIMULATION__SPEED": "300",
        "MACHIKADO_HEALTH__INTERVAL_S": "1",
        "MACHIKADO_RESTROOM__OCCUPANCY_INTERVAL_S": "2",
    }
    node = NodeProcess(NODES / config, env=env, log=tmp_path / "node.log")
    seen: set[str] = set()

    def measurements() -> set[str]:
        messages = list(recorder.messages)
        for msg in messages[done[0] :]:
            if msg.topic.endswith("/data"):
                envelope = parse_envelope(bytes(msg.payload), topic_node=node.cfg.node.id)
                seen.update(r.m for r in envelope.readings)
        done[0] = len(messages)
        return seen

    done = [0]
    with (
        RecordingClient(mosquitto) as recorder,
        ReceiptStandin(mosquitto.host, mosquitto.port) as cloud,
    ):
        recorder.subscribe(f"machikado/v1/{node.cfg.node.id}/#")
        node.start()
        try:
            wait_for(
                f"{sorted(EXPECTED[config])} from {config}",
                lambda: measurements() >= EXPECTED[config],
                90,
            )
        except AssertionError:
            raise AssertionError(f"saw only {sorted(seen)}\n{node.log_tail()}") from None
        finally:
            code = node.terminate()
        birth = recorder.wait_for_message(f"machikado/v1/{node.cfg.node.id}/birth")
        state = f"machikado/v1/{node.cfg.node.id}/state"
        wait_for(
            "the node to say offline on a clean stop",
            lambda: any(m.topic == state and m.payload == b"offline" for m in recorder.messages),
            10,
        )
    assert code == 0
    assert json.loads(birth.payload)["kind"] == node.cfg.node.kind
    assert not cloud.invalid
