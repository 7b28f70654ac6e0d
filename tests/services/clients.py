"""A paho-mqtt client for tests that records what the broker sends back, and waits for it.

Every wait is on a condition with a bounded timeout, never a sleep.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.services.errors import ServiceError
from tests.services.mosquitto import MosquittoServer

T = TypeVar("T")

#: Seconds any wait gives the broker to answer.
TIMEOUT_S = 10.0


class RecordingClient:
    """An MQTT client connected to a test broker, recording messages, SUBACKs and PUBACKs.

    For example (it needs the real service, so it is not run as a doctest)::

        with RecordingClient(broker, username="collector-1", password="pw") as c:
            c.subscribe("machikado/v1/#")
            c.wait_for_message("machikado/v1/rr-01/data").payload
    """

    def __init__(
        self,
        broker: MosquittoServer,
        *,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        protocol: Literal["5", "3.1.1"] = "5",
        clean_start: bool = True,
        session_expiry_s: int = 0,
    ) -> None:
        self.broker = broker
        self.client_id = client_id or f"test-{uuid.uuid4().hex[:12]}"
        self.protocol = protocol
        self.clean_start = clean_start
        self.session_expiry_s = session_expiry_s
        v5 = protocol == "5"
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            # MQTT 3.1.1 takes the session flag here; MQTT 5 takes clean_start on connect.
            clean_session=None if v5 else clean_start,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        if broker.tls_ca is not None:
            self._client.tls_set(ca_certs=str(broker.tls_ca))
        self._cond = threading.Condition()
        self.messages: list[mqtt.MQTTMessage] = []
        self._connack: ReasonCode | None = None
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._pubacks: dict[int, ReasonCode] = {}
        #: Reason codes of every disconnect, the broker's (a take-over, 142) and our own.
        self.disconnects: list[ReasonCode] = []
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_publish = self._on_publish

    # -- paho callbacks (paho's network thread) -----------------------------------------------

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self._connack = rc
            self._cond.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self.disconnects.append(rc)
            self._cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, rcs: list[ReasonCode], _p: Any) -> None:
        with self._cond:
            self._subacks[mid] = list(rcs)
            self._cond.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self._pubacks[mid] = rc
            self._cond.notify_all()

    # -- public -------------------------------------------------------------------------------

    def connect(self) -> ReasonCode:
        """Connect and wait for the CONNACK; raise :class:`ServiceError` if it is a refusal."""
        kwargs: dict[str, Any] = {}
        if self.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.session_expiry_s
            kwargs = {"clean_start": self.clean_start, "properties": props}
        self._client.connect(self.broker.host, self.broker.port, keepalive=30, **kwargs)
        self._client.loop_start()
        rc = self._wait(lambda: self._connack, "a CONNACK")
        if rc.is_failure:
            self.disconnect()
            raise ServiceError(f"client {self.client_id}: connection refused: {rc}")
        return rc

    def disconnect(self) -> None:
        """Disconnect cleanly and stop paho's network thread; idempotent."""
        self._client.disconnect()
        self._client.loop_stop()

    def subscribe(self, topic: str, qos: int = 1) -> ReasonCode:
        """Subscribe and return the SUBACK's reason code for the filter."""
        err, mid = self._client.subscribe(topic, qos)
        self._check(err, f"subscribe to {topic}")
        assert mid is not None  # paho gives None only with the error checked above
        return self._wait(lambda: self._subacks.get(mid), f"a SUBACK for {topic}")[0]

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, *, retain: bool = False
    ) -> ReasonCode:
        """Publish and wait for the broker's PUBACK (QoS 1) or the send (QoS 0); return its code."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        self._check(info.rc, f"publish to {topic}")
        if qos == 0:
            info.wait_for_publish(TIMEOUT_S)
        return self._wait(lambda: self._pubacks.get(info.mid), f"a PUBACK for {topic}")

    def wait_for_message(self, topic: str) -> mqtt.MQTTMessage:
        """The first message received on ``topic``, waiting for it if it has not come yet."""
        return self._wait(
            lambda: next((m for m in self.messages if m.topic == topic), None),
            f"a message on {topic}",
        )

    def topics_received(self) -> list[str]:
        with self._cond:
            return [m.topic for m in self.messages]

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    # -- inside -------------------------------------------------------------------------------

    def _wait(self, found: Callable[[], T | None], what: str) -> T:
        with self._cond:
            value = self._cond.wait_for(found, timeout=TIMEOUT_S)
        if value is None:
            raise ServiceError(
                f"client {self.client_id}: no {what} within {TIMEOUT_S:g} s\n"
                f"--- broker log ---\n{self.broker.log_tail(20)}"
            )
        return value

    def _check(self, err: MQTTErrorCode, what: str) -> None:
        if err != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ServiceError(f"client {self.client_id}: {what}: {mqtt.error_string(err)}")
