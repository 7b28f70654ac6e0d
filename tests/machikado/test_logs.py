"""Logging as every command sets it up: tracebacks name the place, never the values there."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: A value no other test or file holds, standing for a resident's answer or a doctor's reply.
SECRET = "Reply-Zygomorphic-4471 熱が38度"

#: Configures logging as the ``machikado`` root command does, then logs an exception raised in a
#: frame whose local variable holds the secret.
CHILD = """
import sys
import structlog
from machikado.logs import configure

configure(level="info", json=sys.argv[1] == "json")
log = structlog.get_logger("test")

def show_reply(text):
    shown = text.upper()
    raise RuntimeError("the screen is gone")

try:
    show_reply(sys.argv[2])
except RuntimeError:
    log.exception("reply_callback_failed", node="ks-01")
"""


def _run(mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, SECRET],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout + done.stderr


@pytest.mark.parametrize("mode", ["console", "json"])
def test_a_logged_traceback_names_the_frame_but_not_its_local_values(mode: str) -> None:
    out = _run(mode)
    # The traceback is there: the event, the function it came from and the exception.
    assert "reply_callback_failed" in out
    assert "show_reply" in out
    assert "the screen is gone" in out
    # ... but not what the frame held, in any form (plain or as the repr of its upper case).
    assert SECRET not in out
    assert SECRET.upper() not in out
    assert "Zygomorphic" not in out.replace("ZYGOMORPHIC", "")
    assert "ZYGOMORPHIC" not in out


def test_a_json_traceback_is_structured_frames_without_locals() -> None:
    line = next(x for x in _run("json").splitlines() if "reply_callback_failed" in x)
    event = json.loads(line)
    frames = [f for exc in event["exception"] for f in exc["frames"]]
    assert [f["name"] for f in frames][-1] == "show_reply"
    assert all("locals" not in f or not f["locals"] for f in frames)
