"""Commands to a node (``cmd/{name}``): the runtime's own rebirth, and handlers other parts of
the node register, such as the kiosk's ``cmd/content_pack``."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import NodeConfig
from edge.runtime import NodeRuntime
from protocol import Topics
from tests.services import MosquittoFactory

SHIPPED_ACL = Path(__file__).resolve().parents[2] / "firmware_config" / "mosquitto" / "acl"
PASSWORDS = {"k-01": "k-01-secret", "collector-1": "collector-secret"}
TIMEOUT_S = 20.0


def _config(data_dir: Path, *, port: int = 1) -> NodeConfig:
    return NodeConfig.model_validate(
        {
            "node": {"id": "k-01", "kind": "kiosk", "data_dir": str(data_dir)},
            "mqtt": {
                "host": "127.0.0.1",
                "port": port,
                "password": PASSWORDS["k-01"],
                "reconnect_min_s": 0.1,
                "reconnect_max_s": 0.5,
                "keepalive_s": 5,
            },
            "health": {"interval_s": 3600},
        }
    )


def test_a_registered_command_gets_its_payload_and_others_are_left_alone(tmp_path: Path) -> None:
    runtime = NodeRuntime(_config(tmp_path))
    got: list[bytes] = []
    runtime.on_command_named("content_pack", got.append)
    runtime.on_command("content_pack", b"pack-1")
    runtime.on_command("reboot", b"")  # nobody registered: logged, not handed anywhere
    runtime.on_command_named("content_pack", None)
    runtime.on_command("content_pack", b"pack-2")
    runtime.outbox.close()
    assert got == [b"pack-1"]


def test_a_failing_command_handler_does_not_break_the_runtime(tmp_path: Path) -> None:
    runtime = NodeRuntime(_config(tmp_path))

    def broken(_payload: bytes) -> None:
        raise RuntimeError("handler bug")

    runtime.on_command_named("content_pack", broken)
    runtime.on_command("content_pack", b"x")  # must not raise into paho's callback
    runtime.outbox.close()


def test_rebirth_cannot_be_taken_over(tmp_path: Path) -> None:
    runtime = NodeRuntime(_config(tmp_path))
    with pytest.raises(ValueError, match="rebirth"):
        runtime.on_command_named("rebirth", lambda _p: None)
    runtime.outbox.close()


def test_a_retained_command_from_the_collector_reaches_the_node_when_it_connects(
    mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> None:
    acl = tmp_path / "acl"
    acl.write_text(SHIPPED_ACL.read_text(encoding="utf-8"), encoding="utf-8")
    broker = mosquitto_factory(users=PASSWORDS, acl_file=acl)
    topic = Topics().cmd("k-01", "content_pack")
    _publish_retained(broker.host, broker.port, topic, b"retained pack")

    runtime = NodeRuntime(_config(tmp_path / "data", port=broker.port))
    got: list[bytes] = []
    arrived = threading.Event()

    def handler(payload: bytes) -> None:
        got.append(payload)
        arrived.set()

    runtime.on_command_named("content_pack", handler)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        try:
            await asyncio.wait_for(asyncio.to_thread(arrived.wait, TIMEOUT_S), TIMEOUT_S + 1)
        finally:
            stop.set()
            await task

    asyncio.run(run())
    assert got == [b"retained pack"], broker.log_tail(20)


def _publish_retained(host: str, port: int, topic: str, payload: bytes) -> None:
    """Publish as the cloud (a ``collector-<n>`` user) with retain, and wait for the PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cloud-cmd")
    client.username_pw_set("collector-1", PASSWORDS["collector-1"])
    client.connect(host, port, keepalive=10)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(TIMEOUT_S)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()
