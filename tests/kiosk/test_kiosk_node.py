"""The kiosk as a node on a real Mosquitto: consultation request and reply, usage counts."""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl.public import PrivateKey
from pydantic import SecretStr

from kiosk.consult import ConsultError, Ticket
from kiosk.node import KioskNode
from kiosk.session import SessionUsage
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
        ttl = float(kwargs.pop("consult_ttl_s", 1800.0))  # type: ignore[arg-type]
        config = kiosk_config(
            tmp_path / "data",
            port=port,
            public_key=bytes(service_key.public_key),
            resend_after_s=resend,
        )
        config = config.model_copy(
            update={"kiosk": config.kiosk.model_copy(update={"consult_ttl_s": ttl})}
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


def test_an_unanswered_request_runs_out_leaves_the_outbox_and_the_app_is_told(
    mosquitto: MosquittoServer, make_node: Callable[..., KioskNode], service_key: PrivateKey
) -> None:
    expired: list[Ticket] = []
    replies = Replies()
    with ConsultService(mosquitto, private_key=service_key, accept=False) as service:
        node = make_node(mosquitto.port, resend_after_s=0.2, consult_ttl_s=2.0)
        node.on_request_expired(expired.append)
        node.on_reply(replies)
        node.start()
        ticket = node.request_consultation(REQUEST)
        service.wait_for_requests(2)  # sent, and sent again while nobody accepts it
        wait_until("the request to run out", lambda: expired == [ticket])
        # No longer in the outbox, so never sent again; the session forgot it.
        assert node.runtime.outbox.message_keys() == []
        assert node.current_ticket is None
        late = service.requests()[0]
        # A late answer to it is dropped unread; an answer to a new request is shown.
        service.publish_reply(late, "Too late for this one.")
        again = node.request_consultation(REQUEST)
        copies = service.wait_for_requests(len(service.received) + 1)
        fresh = next(r for r in copies if r.ticket == again.number)
        service.publish_reply(fresh, "Rest today.")
        ((got_ticket, got_text, _lang),) = replies.wait()
    assert (got_ticket, got_text) == (again, "Rest today.")
    assert expired == [ticket]


class WallClock:
    """Unix seconds that a test moves by hand (the node's usage periods follow it)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _usage_readings(cloud: RecordingClient) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for msg in list(cloud.messages):
        env = Envelope.model_validate_json(msg.payload)
        out += [r.model_dump(mode="json") for r in env.readings if r.m.startswith("kiosk_")]
    return out


#: 10:20 on a day in 2026, UTC: a period that began at 10:00.
T0 = 1_790_000_000 - 1_790_000_000 % 3600 + 20 * 60


def test_sessions_are_sent_only_as_counts_of_a_finished_period(
    mosquitto: MosquittoServer, make_node: Callable[..., KioskNode]
) -> None:
    clock = WallClock(T0)
    with RecordingClient(mosquitto) as cloud:
        cloud.subscribe(Topics().data("k-01"))
        node = make_node(mosquitto.port, usage_clock=clock)
        node.start()
        node.declare_usage("language", ["ja", "en", "zh-Hans"])
        node.declare_usage("info_category", ["health", "childcare"])
        for n in range(6):
            node.count_session(
                SessionUsage(
                    language="zh-Hans" if n else "en",
                    tier="green" if n < 5 else "red",
                    consult_requested=n == 5,
                    info_categories=frozenset({"health"}),
                    high_contrast=True,
                )
            )
        assert node.usage.closed() == [], "the period has not ended: nothing to send"
        clock.now += 3600
        wait_until("the period's counts", lambda: bool(_usage_readings(cloud)))
        readings = _usage_readings(cloud)
    assert {r["m"] for r in readings} == {"kiosk_usage"}
    assert {r["at"] for r in readings} == {"2026-09-21T14:00:00.000000Z"}
    cells = {(r["tags"]["dimension"], r["tags"]["value"]): r["fields"] for r in readings}
    assert cells[("sessions", "all")] == {"count_text": "6", "count": 6}
    assert cells[("language", "zh-Hans")] == {"count_text": "5", "count": 5}
    assert cells[("tier", "green")] == {"count_text": "5", "count": 5}
    assert cells[("info_category", "health")] == {"count_text": "6", "count": 6}
    assert cells[("display", "high_contrast")] == {"count_text": "6", "count": 6}
    for cell in [
        ("language", "en"),
        ("language", "ja"),
        ("language", "none"),
        ("tier", "red"),
        ("tier", "yellow"),
        ("tier", "white"),
        ("consultation", "requested"),
        ("info_category", "childcare"),
        ("display", "large_text"),
    ]:
        assert cells[cell] == {"count_text": "<5"}, cell
    assert len(readings) == len(cells), "each cell once"


def test_a_clean_stop_keeps_the_open_period_in_a_private_file_and_a_restart_resumes_it(
    mosquitto: MosquittoServer, make_node: Callable[..., KioskNode], tmp_path: Path
) -> None:
    clock = WallClock(T0)
    with RecordingClient(mosquitto) as cloud:
        cloud.subscribe(Topics().data("k-01"))
        first = make_node(mosquitto.port, usage_clock=clock)
        first.start()
        for _ in range(3):
            first.count_session(SessionUsage(language="ja", tier="yellow"))
        first.stop()
        state = tmp_path / "data" / "kiosk-usage.json"
        assert stat.S_IMODE(state.stat().st_mode) == 0o600
        assert not _usage_readings(cloud), "nothing of an unfinished period is sent"
        # Started again within the same period: the counts go on from where they were.
        clock.now += 600
        second = make_node(mosquitto.port, usage_clock=clock)
        second.start()
        wait_until("the second node to connect", lambda: second.connected)
        assert not state.exists(), "taken up, then removed"
        for _ in range(2):
            second.count_session(SessionUsage(language="ja", tier="yellow"))
        clock.now += 3600
        wait_until("the period's counts", lambda: bool(_usage_readings(cloud)))
        readings = _usage_readings(cloud)
        second.stop()
    cells = {(r["tags"]["dimension"], r["tags"]["value"]): r["fields"] for r in readings}
    # One reading per cell for the period, holding both runs' sessions: 3 + 2.
    assert len(readings) == len(cells)
    assert cells[("sessions", "all")] == {"count_text": "5", "count": 5}
    assert cells[("tier", "yellow")] == {"count_text": "5", "count": 5}


def test_a_period_saved_at_stop_that_ended_before_the_restart_is_sent_at_the_restart(
    mosquitto: MosquittoServer, make_node: Callable[..., KioskNode], tmp_path: Path
) -> None:
    clock = WallClock(T0)
    first = make_node(mosquitto.port, usage_clock=clock)
    first.start()
    first.count_session(SessionUsage(language="ja"))
    first.stop()
    clock.now += 5 * 3600  # off for five hours
    with RecordingClient(mosquitto) as cloud:
        cloud.subscribe(Topics().data("k-01"))
        second = make_node(mosquitto.port, usage_clock=clock)
        second.start()
        wait_until("the saved period's counts", lambda: bool(_usage_readings(cloud)))
        readings = _usage_readings(cloud)
    assert {r["at"] for r in readings} == {"2026-09-21T14:00:00.000000Z"}
    cells = {(r["tags"]["dimension"], r["tags"]["value"]): r["fields"] for r in readings}
    assert cells[("sessions", "all")] == {"count_text": "<5"}


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
