"""The kiosk as a node on a real Mosquitto: consultation request and reply, telemetry."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nacl.public import PrivateKey
from pydantic import SecretStr

from kiosk.consult import ConsultError, Ticket
from kiosk.node import KioskNode
from protocol import Envelope, Topics
from tests.kiosk.consult_service import (
    CLOUD_USER,
    ConsultService,
    kiosk_config,
    publish_content_pack,
    shipped_acl_broker,
    wait_until,
)
from tests.services import MosquittoFactory, MosquittoServer
from tests.services.clients import RecordingClient
from tests.services.ports import free_port

REQUEST = {
    "answers": [
        {"question": "Main symptom?", "answer": "Cough", "question_id": "symptom"},
        {"question": "Fever?", "answer": "Slight fever", "answer_id": "slight"},
    ],
    "tier": "green",
    "language": "en",
    "age_band": "adult",
}


class Replies:
    """Collects reply callbacks and lets a test wait for them."""

    def __init__(self) -> None:
        self.got: list[tuple[Ticket, str, str]] = []
        self._cond = threading.Condition()

    def __call__(self, ticket: Ticket, text: str, language: str) -> None:
        with self._cond:
            self.got.append((ticket, text, language))
            self._cond.notify_all()

    def wait(self, n: int = 1) -> list[tuple[Ticket, str, str]]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.got) >= n, 20):
                raise AssertionError(f"{len(self.got)} replies reached the kiosk, not {n}")
            return list(self.got)


def outbox_empty(node: KioskNode) -> bool:
    return not node.runtime.outbox.message_keys()


@pytest.fixture
def service_key() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture
def make_node(tmp_path: Path, service_key: PrivateKey) -> Iterator[Callable[..., KioskNode]]:
    nodes: list[KioskNode] = []

    def make(port: int, **kwargs: object) -> KioskNode:
        resend = float(kwargs.pop("resend_after_s", 30.0))  # type: ignore[arg-type]
        config = kiosk_config(
            tmp_path / "data",
            port=port,
            public_key=bytes(service_key.public_key),
            resend_after_s=resend,
        )
        node = KioskNode(config, **kwargs)  # type: ignore[arg-type]
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop()


def test_request_is_sealed_sent_accepted_and_the_reply_reaches_the_callback(
    mosquitto: MosquittoServer, make_node: Callable[..., KioskNode], service_key: PrivateKey
) -> None:
    replies = Replies()
    text = "Please rest and drink water; see a clinic tomorrow if the fever stays."
    with ConsultService(mosquitto, private_key=service_key, reply=text) as service:
        node = make_node(mosquitto.port)
        node.on_reply(replies)
        node.start()
        ticket = node.request_consultation(REQUEST)
        ((got_ticket, got_text, got_language),) = replies.wait()
        (request,) = service.requests()
    assert got_ticket is ticket
    assert (got_text, got_language) == (text, "en")
    assert node.reply is not None
    assert node.reply.text == text
    # What the service opened is what the resident answered, with the ticket shown.
    assert request.kiosk == "k-01"
    assert (request.ticket, request.code) == (ticket.number, ticket.code)
    assert [(a.question, a.answer) for a in request.answers] == [
        ("Main symptom?", "Cough"),
        ("Fever?", "Slight fever"),
    ]
    assert (request.tier, request.language, request.age_band) == ("green", "en", "adult")
    _topic, kiosk, number, _r = service.received[0]
    assert (kiosk, number) == ("k-01", ticket.number)
    wait_until("the accepted request left the outbox", lambda: outbox_empty(node))


def test_request_waits_in_the_outbox_while_the_broker_is_down_and_goes_when_it_is_back(
    mosquitto_factory: MosquittoFactory,
    make_node: Callable[..., KioskNode],
    service_key: PrivateKey,
) -> None:
    port = free_port()
    replies = Replies()
    node = make_node(port, resend_after_s=1.0)
    node.on_reply(replies)
    node.start()
    ticket = node.request_consultation(REQUEST)
    assert not node.connected
    assert node.runtime.outbox.message_keys() == [ticket.number]
    broker = mosquitto_factory(port=port)
    with ConsultService(broker, private_key=service_key, reply="Come to the clinic.") as service:
        ((got_ticket, text, _language),) = replies.wait()
        assert {r.ticket for r in service.requests()} == {ticket.number}
    assert (got_ticket, text) == (ticket, "Come to the clinic.")
    wait_until("the accepted request left the outbox", lambda: outbox_empty(node))


def test_an_unaccepted_request_is_sent_again_until_it_is_accepted(
    mosquitto: MosquittoServer, make_node: Callable[..., KioskNode], service_key: PrivateKey
) -> None:
    with ConsultService(mosquitto, private_key=service_key, accept=False) as service:
        node = make_node(mosquitto.port, resend_after_s=0.5)
        node.start()
        ticket = node.request_consultation(REQUEST)
        copies = service.wait_for_requests(2)
        assert {r.ticket for r in copies} == {ticket.number}
        assert node.runtime.outbox.message_keys() == [ticket.number]
        service.publish_accepted("k-01", ticket.number)
        wait_until("the accepted request left the outbox", lambda: outbox_empty(node))


def test_a_late_reply_for_a_wiped_session_is_not_shown_to_the_next_resident(
    mosquitto: MosquittoServer, make_node: Callable[..., KioskNode], service_key: PrivateKey
) -> None:
    replies = Replies()
    with ConsultService(mosquitto, private_key=service_key) as service:
        node = make_node(mosquitto.port)
        node.on_reply(replies)
        node.start()
        node.request_consultation(REQUEST)
        (first,) = service.wait_for_requests(1)
        node.wipe()
        assert node.current_ticket is None
        second_ticket = node.request_consultation({**REQUEST, "language": "ko"})
        _, second = service.wait_for_requests(2)
        # Replies on one topic from one client arrive in order: the late one comes first.
        service.publish_reply(first, "for the previous resident")
        service.publish_reply(second, "for you")
        got = replies.wait(1)
    assert [(t.number, text) for t, text, _ in got] == [(second_ticket.number, "for you")]
    assert node.reply is not None
    assert node.reply.text == "for you"


def test_a_reply_dispatched_before_a_wipe_is_dropped_when_its_turn_comes(
    mosquitto: MosquittoServer, make_node: Callable[..., KioskNode], service_key: PrivateKey
) -> None:
    queued: list[Callable[[], None]] = []
    arrived = threading.Event()

    def dispatch(fn: Callable[[], None]) -> None:  # like Clock.schedule_once: runs later
        queued.append(fn)
        arrived.set()

    replies = Replies()
    with ConsultService(mosquitto, private_key=service_key, reply="answer") as _service:
        node = make_node(mosquitto.port, dispatch=dispatch)
        node.on_reply(replies)
        node.start()
        node.request_consultation(REQUEST)
        assert arrived.wait(20)
    assert node.pending_deliveries == 1
    node.wipe()
    assert node.pending_deliveries == 0
    assert node.reply is None
    for fn in queued:
        fn()
    assert replies.got == []


def test_record_session_sends_an_anonymous_kiosk_session_reading(
    mosquitto: MosquittoServer, make_node: Callable[..., KioskNode]
) -> None:
    topic = Topics().data("k-01")
    with RecordingClient(mosquitto) as cloud:
        cloud.subscribe(topic)
        node = make_node(mosquitto.port)
        node.start()
        node.record_session(
            {
                "language": "zh-Hans",
                "duration_s": 95.25,
                "path": "language>home>triage>result>doctor",
                "tier": "green",
                "info_categories": "health,childcare",
                "items_viewed": 2,
                "consult_requested": True,
                "large_text": False,
                "high_contrast": True,
            }
        )

        def session_readings() -> list[dict[str, object]]:
            out = []
            for msg in list(cloud.messages):
                env = Envelope.model_validate_json(msg.payload)
                out += [r.model_dump() for r in env.readings if r.m == "kiosk_session"]
            return out

        wait_until("a kiosk_session reading", lambda: bool(session_readings()))
    (reading,) = session_readings()
    assert reading["tags"] == {"language": "zh-Hans", "tier": "green"}
    fields = reading["fields"]
    assert isinstance(fields, dict)
    assert fields["duration_s"] == 95.25
    assert fields["path"] == "language>home>triage>result>doctor"
    assert fields["info_categories"] == "health,childcare"
    assert "answers" not in json.dumps(reading)


def test_a_summary_with_anything_beyond_usage_is_refused(
    mosquitto: MosquittoServer, make_node: Callable[..., KioskNode]
) -> None:
    node = make_node(mosquitto.port)
    node.start()
    with pytest.raises(Exception, match="answers"):
        node.record_session({"duration_s": 3.0, "answers": "Cough"})


def test_a_request_without_a_service_key_or_a_start_is_a_clear_error(
    tmp_path: Path, service_key: PrivateKey
) -> None:
    config = kiosk_config(tmp_path, port=1, public_key=bytes(service_key.public_key))
    with pytest.raises(ConsultError, match="not started"):
        KioskNode(config).request_consultation(REQUEST)
    no_key = config.kiosk.model_copy(update={"consult_public_key": ""})
    bare = config.model_copy(update={"kiosk": no_key})
    with pytest.raises(ConsultError, match="consult_public_key"):
        KioskNode(bare).request_consultation(REQUEST)
    with pytest.raises(ConsultError, match="consult_url"):
        KioskNode(config, consult_url="consult.example.org")


def test_a_request_with_bad_fields_names_them_without_their_values(
    mosquitto: MosquittoServer, make_node: Callable[..., KioskNode]
) -> None:
    node = make_node(mosquitto.port)
    node.start()
    with pytest.raises(ConsultError, match="tier") as caught:
        node.request_consultation({**REQUEST, "tier": "Cough-purple"})
    assert "Cough-purple" not in str(caught.value)
    assert node.current_ticket is None
    assert node.runtime.outbox.message_keys() == []


def test_a_retained_content_pack_from_the_cloud_reaches_the_app_and_a_wipe_keeps_it(
    mosquitto_factory: MosquittoFactory, tmp_path: Path, service_key: PrivateKey
) -> None:
    broker, passwords = shipped_acl_broker(mosquitto_factory, tmp_path, node="k-01")
    publish_content_pack(broker.host, broker.port, "k-01", b"pack one", passwords[CLOUD_USER])
    config = kiosk_config(
        tmp_path / "data", port=broker.port, public_key=bytes(service_key.public_key)
    )
    config = config.model_copy(
        update={"mqtt": config.mqtt.model_copy(update={"password": SecretStr(passwords["k-01"])})}
    )
    packs: list[bytes] = []
    node = KioskNode(config)
    node.on_content_pack(packs.append)
    node.start()
    try:
        wait_until("the retained pack", lambda: packs == [b"pack one"])
        node.wipe()  # a resident leaving does not touch the content
        publish_content_pack(broker.host, broker.port, "k-01", b"pack two", passwords[CLOUD_USER])
        wait_until("the second pack", lambda: packs == [b"pack one", b"pack two"])
        # The cloud clearing its retained pack is not a pack: nothing is handed on.
        publish_content_pack(broker.host, broker.port, "k-01", b"", passwords[CLOUD_USER])
        publish_content_pack(broker.host, broker.port, "k-01", b"pack three", passwords[CLOUD_USER])
        wait_until("the third pack", lambda: len(packs) == 3)
    finally:
        node.stop()
    assert packs == [b"pack one", b"pack two", b"pack three"]
