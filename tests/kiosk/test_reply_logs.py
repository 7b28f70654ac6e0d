"""A doctor's reply never reaches a log, even when showing it fails.

The kiosk node runs in a child process that logs exactly as ``machikado kiosk`` does (structlog
through :func:`machikado.logs.configure`, the standard library's root logger at debug, in both
the console and the JSON renderer). Its reply callback raises an exception whose message quotes
the reply and whose frame holds it; every byte the process writes is searched for it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from nacl.public import PrivateKey

from tests.kiosk.consult_service import ConsultService
from tests.services import MosquittoFactory

#: The doctor's answer: a token nothing else holds, and text in two scripts.
REPLY = "Drink-ORS-Qx7731 hourly; 38度以上なら119番"

CHILD = """
import base64, sys, threading
from machikado.logs import configure
from tests.kiosk.consult_service import kiosk_config
from kiosk.node import KioskNode

port, data_dir, key, mode = sys.argv[1:5]
configure(level="debug", json=mode == "json")
called = threading.Event()

def show_on_screen(ticket, text, language):
    called.set()
    shown = text.upper()
    raise RuntimeError(f"the label cannot take {text!r} ({len(shown)} chars)")

node = KioskNode(kiosk_config(data_dir, port=int(port), public_key=base64.b64decode(key)))
node.on_reply(show_on_screen)
node.start()
node.request_consultation({
    "answers": [{"question": "Main symptom?", "answer": "Fever"}],
    "tier": "green", "language": "en", "age_band": "adult",
})
if not called.wait(30):
    sys.exit("the reply never reached the callback")
node.wipe()
node.stop()
print("child-done", flush=True)
"""


def _forms(text: str) -> list[str]:
    """How a text may appear in a log: as it is, JSON-escaped (ASCII or not), its repr, and
    its upper case; and its ASCII token alone."""
    return [
        text,
        json.dumps(text)[1:-1],
        json.dumps(text, ensure_ascii=False)[1:-1],
        repr(text)[1:-1],
        text.upper(),
        "Qx7731",
        "QX7731",
    ]


@pytest.mark.parametrize("mode", ["console", "json"])
def test_a_failing_reply_callback_logs_where_it_failed_but_not_the_reply(
    mosquitto_factory: MosquittoFactory, tmp_path: Path, mode: str
) -> None:
    broker = mosquitto_factory()
    key = PrivateKey.generate()
    with ConsultService(broker, private_key=key, reply=REPLY):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(broker.port),
                str(tmp_path / "data"),
                base64.b64encode(bytes(key.public_key)).decode(),
                mode,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=Path(__file__).resolve().parents[2],
        )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "child-done" in done.stdout
    # The failure is logged, with the place it happened ...
    assert "consult_reply_callback_failed" in out
    assert "show_on_screen" in out
    assert "RuntimeError" in out
    # ... and nothing of the reply, in any stream, in any form.
    leaked = [form for form in _forms(REPLY) if form in out]
    assert leaked == [], out
