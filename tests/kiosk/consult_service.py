"""Test helpers: a stand-in consultation service on a real broker, a kiosk node config, and
the cloud's content-pack command.

:class:`ConsultService` subscribes to every kiosk's ``consult/request``, opens each request with
the service's private key, and (when told to) publishes ``consult/accepted`` and a sealed
``consult/reply``, as the cloud's consultation service does. :func:`publish_content_pack`
publishes a pack as the cloud does: retained, on ``cmd/content_pack``, as a ``collector-<n>``
user that the shipped ACL lets write commands (:func:`shipped_acl_broker`).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from nacl.public import PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import NodeConfig
from kiosk.consult import (
    ConsultRequest,
    accepted_message,
    open_request,
    parse_request_message,
    reply_message,
)
from protocol import Topics
from tests.integration.nodes import wait_for
from tests.services import MosquittoFactory, MosquittoServer

TIMEOUT_S = 20.0
SHIPPED_ACL = Path(__file__).resolve().parents[2] / "firmware_config" / "mosquitto" / "acl"
#: The cloud's MQTT user in the shipped ACL: may write ``machikado/v1/+/cmd/#``.
CLOUD_USER = "collector-1"


def shipped_acl_broker(
    factory: MosquittoFactory, tmp_dir: Path, *, node: str
) -> tuple[MosquittoServer, dict[str, str]]:
    """A broker with the shipped ACL, users ``node`` and ``collector-1``; and their passwords."""
    acl = tmp_dir / "acl"
    acl.write_text(SHIPPED_ACL.read_text(encoding="utf-8"), encoding="utf-8")
    passwords = {node: f"{node}-secret", CLOUD_USER: "collector-secret"}
    return factory(users=passwords, acl_file=acl), passwords


def publish_content_pack(
    host: str, port: int, node: str, pack: bytes, password: str, *, prefix: str = "machikado"
) -> None:
    """Publish ``pack`` retained on ``node``'s ``cmd/content_pack`` as the cloud; wait for the
    broker's PUBACK and fail if the broker refused it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(CLOUD_USER, password)
    acked = threading.Event()
    codes: list[Any] = []

    def on_publish(_c: Any, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        codes.append(reason)
        acked.set()

    client.on_publish = on_publish
    client.connect(host, port, keepalive=10)
    client.loop_start()
    try:
        client.publish(Topics(prefix).cmd(node, "content_pack"), pack, qos=1, retain=True)
        if not acked.wait(TIMEOUT_S):
            raise AssertionError(f"no PUBACK for the content pack within {TIMEOUT_S:g} s")
    finally:
        client.disconnect()
        client.loop_stop()
    (code,) = codes
    if code.is_failure:
        raise AssertionError(f"the broker refused the content pack: {code}")


def kiosk_config(
    data_dir: Path,
    *,
    port: int,
    public_key: bytes,
    node: str = "k-01",
    resend_after_s: float = 30.0,
) -> NodeConfig:
    """A kiosk node's config for tests: fast reconnects, no health noise."""
    return NodeConfig.model_validate(
        {
            "node": {"id": node, "kind": "kiosk", "data_dir": str(data_dir)},
            "mqtt": {
                "host": "127.0.0.1",
                "port": port,
                "reconnect_min_s": 0.1,
                "reconnect_max_s": 0.5,
                "resend_after_s": resend_after_s,
                "keepalive_s": 5,
            },
            "outbox": {"commit_window_ms": 20},
            "health": {"interval_s": 3600},
            "kiosk": {"consult_public_key": base64.b64encode(public_key).decode()},
        }
    )


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` when it never does."""
    wait_for(what, predicate, timeout)


class ConsultService:
    """Plays the consultation service: opens requests, accepts them, answers them.

    ``accept`` False leaves requests unaccepted (the kiosk keeps sending them again);
    ``reply`` given, each accepted request gets that answer at once.
    """

    def __init__(
        self,
        broker: MosquittoServer,
        *,
        private_key: PrivateKey,
        accept: bool = True,
        reply: str | None = None,
        prefix: str = "machikado",
    ) -> None:
        self.broker = broker
        self.private_key = private_key
        self.accept = accept
        self.reply = reply
        self.topics = Topics(prefix)
        self._cond = threading.Condition()
        #: Every request copy received: (topic, kiosk, ticket, the opened request).
        self.received: list[tuple[str, str, str, ConsultRequest]] = []
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="consult-service")
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *_a: self._subscribed.set()

    def __enter__(self) -> ConsultService:
        self._client.connect(self.broker.host, self.broker.port, keepalive=10)
        self._client.loop_start()
        if not self._subscribed.wait(TIMEOUT_S):
            raise AssertionError("the consultation service could not subscribe")
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, *_a: Any) -> None:
        client.subscribe(self.topics.every("consult") + "/request", qos=1)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        kiosk, ticket, sealed = parse_request_message(bytes(msg.payload))
        request = open_request(sealed, bytes(self.private_key))
        # (kiosk, ticket) outside the seal are kept as they came; tests compare them with inside.
        with self._cond:
            self.received.append((msg.topic, kiosk, ticket, request))
            self._cond.notify_all()
        if self.accept:
            self.publish_accepted(kiosk, ticket)
            if self.reply is not None:
                self.publish_reply(request, self.reply)

    def publish_accepted(self, kiosk: str, ticket: str) -> None:
        self._client.publish(
            self.topics.consult(kiosk, "accepted"), accepted_message(ticket), qos=1
        )

    def publish_reply(self, request: ConsultRequest, text: str, *, language: str = "") -> None:
        payload = reply_message(
            ticket=request.ticket,
            text=text,
            language=language or request.language,
            reply_key=request.reply_key,
        )
        self._client.publish(self.topics.consult(request.kiosk, "reply"), payload, qos=1)

    def requests(self) -> list[ConsultRequest]:
        with self._cond:
            return [r for _t, _k, _n, r in self.received]

    def wait_for_requests(self, n: int = 1) -> list[ConsultRequest]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= n, TIMEOUT_S):
                raise AssertionError(
                    f"the consultation service got {len(self.received)} requests, not {n}, "
                    f"within {TIMEOUT_S:g} s\n{self.broker.log_tail(20)}"
                )
            return [r for _t, _k, _n, r in self.received]
