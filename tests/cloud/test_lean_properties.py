"""The collector's lean MQTT 5 properties decode PUBLISH packets exactly as paho's own."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.exception import MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.collector import lean_properties
from cloud.collector.lean_properties import LeanProperties


def publish_body(topic: str, mid: int, props: Properties | None, payload: bytes) -> bytes:
    """A PUBLISH packet after its fixed header, as the broker sends it to an MQTT 5 client."""
    name = topic.encode()
    block = props.pack() if props is not None else b"\x00"  # type: ignore[no-untyped-call]
    return struct.pack("!H", len(name)) + name + struct.pack("!H", mid) + block + payload


def as_json(props: Properties | None) -> Any:
    assert props is not None
    return props.json()  # type: ignore[no-untyped-call]


def decode(body: bytes) -> _packet.PublishPacket:
    return _packet.decode_publish(0x32, body, MQTTProtocolVersion.MQTTv5)


def test_installed_decoder_reads_messages_with_and_without_properties() -> None:
    assert lean_properties.install()
    assert vars(_packet)["Properties"] is LeanProperties
    plain = decode(publish_body("machikado/v1/rr-01/data", 7, None, b'{"v":1}'))
    assert (plain.topic, plain.mid, plain.payload) == (b"machikado/v1/rr-01/data", 7, b'{"v":1}')
    assert isinstance(plain.properties, Properties)
    assert as_json(plain.properties) == {}

    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.MessageExpiryInterval = 60
    props.UserProperty = ("trial", "restroom")
    props.ContentType = "application/json"
    rich = decode(publish_body("t/x", 9, props, b"payload"))
    assert rich.payload == b"payload"
    assert as_json(rich.properties) == as_json(props)


def test_lean_properties_still_refuse_a_property_that_does_not_fit_the_packet() -> None:
    props = LeanProperties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = 5
    assert as_json(props) == {"MessageExpiryInterval": 5}
    with pytest.raises(MQTTException, match="does not apply"):
        props.SessionExpiryInterval = 5
