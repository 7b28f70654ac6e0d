"""Nothing of a resident's session is left behind by the kiosk node: not on disk in clear, not
in the broker's persistence, not in logs, not in the node's state after a wipe."""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from pathlib import Path

import pytest
from nacl.public import PrivateKey
from structlog.testing import capture_logs

from kiosk.consult import Ticket
from kiosk.node import KioskNode
from kiosk.session import SessionUsage
from protocol import Topics
from tests.kiosk.consult_service import ConsultService, kiosk_config, wait_until
from tests.services import MosquittoFactory
from tests.services.clients import RecordingClient

#: Answers no other test or file would contain, in three scripts.
ANSWERS = [
    ("Main symptom?", "Zygomorphic-ache-7731"),
    ("いつからですか", "ムカムカ腹痛きのうから"),
    ("Đau ở đâu?", "Đau bụng quặn từng cơn"),
]
REPLY = "Uống oresol mỗi giờ; nếu sốt cao hãy gọi 119."


def _forms(text: str) -> list[bytes]:
    """How a text may sit in a file: UTF-8, or JSON-escaped as ``json.dumps`` writes it."""
    return [text.encode(), json.dumps(text).strip('"').encode()]


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _leaks(blob: bytes, secrets: list[str]) -> list[str]:
    return [s for s in secrets if any(form in blob for form in _forms(s))]


def test_nothing_of_a_session_remains_in_clear_on_disk_in_the_broker_or_in_logs(
    mosquitto_factory: MosquittoFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    broker = mosquitto_factory()
    key = PrivateKey.generate()
    # Whatever the kiosk's process puts in temp files lands here, where it is searched too.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    caplog.set_level(logging.DEBUG)
    # A consultation service that is offline now: the broker keeps the request for it, and so
    # writes it to its persistence file.
    request_filter = Topics().every("consult") + "/request"
    with RecordingClient(
        broker, client_id="service-offline", clean_start=False, session_expiry_s=3600
    ) as offline:
        offline.subscribe(request_filter)

    got = threading.Event()
    seen: list[tuple[Ticket, str, str]] = []

    def on_reply(ticket: Ticket, text: str, language: str) -> None:
        seen.append((ticket, text, language))
        got.set()

    config = kiosk_config(tmp_path / "data", port=broker.port, public_key=bytes(key.public_key))
    with capture_logs() as logs, ConsultService(broker, private_key=key, reply=REPLY):
        node = KioskNode(config)
        node.on_reply(on_reply)
        node.start()
        ticket = node.request_consultation(
            {
                "answers": [{"question": q, "answer": a} for q, a in ANSWERS],
                "tier": "yellow",
                "language": "vi",
                "age_band": "over-65",
            }
        )
        assert got.wait(20), "the doctor's reply never reached the kiosk"
        wait_until("the request accepted", lambda: not node.runtime.outbox.message_keys())
        node.count_session(SessionUsage(language="vi", tier="yellow", consult_requested=True))
        node.wipe()
        node.stop()
    broker.stop()  # Mosquitto writes its persistence file on the way out

    assert seen[0][1] == REPLY  # the resident did see it, before the wipe
    secrets = [a for _q, a in ANSWERS] + [q for q, _a in ANSWERS] + [ticket.code, REPLY]

    # The broker: its persistence holds the request queued for the offline service ...
    persisted = _all_bytes(broker.persistence_dir)
    assert any(form in persisted for form in _forms(ticket.number)), "request not persisted"
    # ... sealed: none of the answers, the code or the reply in clear.
    assert _leaks(persisted, secrets) == []

    # The kiosk's disk: the outbox (with its WAL), the status file, any temp file.
    disk = _all_bytes(tmp_path / "data") + _all_bytes(scratch)
    # The usage counts kept over the stop are there, so the search sees what the node wrote.
    assert b'["consultation","requested",1]' in disk
    assert _leaks(disk, secrets) == []

    # Logs: structlog events, the stdlib's records, and anything printed.
    out, err = capfd.readouterr()
    events = [e["event"] for e in logs]
    assert "consult_request_stored" in events  # the capture saw the node's own logging
    assert "consult_reply_received" in events
    text = repr(logs) + caplog.text + out + err
    assert _leaks(text.encode(), [*secrets, ticket.number]) == []
    assert not [e for e in logs if {"language", "ticket", "code", "answers"} & set(e)]

    # The node's memory-visible state: nothing of the session after the wipe.
    assert node.current_ticket is None
    assert node.reply is None
    assert node.pending_deliveries == 0
    state = repr(vars(node))
    assert _leaks(state.encode(), [*secrets, ticket.number]) == []
