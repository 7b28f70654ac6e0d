"""A backlog drains at its bounded rate while live readings go out at once, never behind it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.standin import ReceiptStandin
from tests.integration.nodes import NodeProcess, wait_for, write_node_config
from tests.services import MosquittoServer
from tests.services.clients import RecordingClient

pytestmark = pytest.mark.integration


def test_live_readings_are_not_starved_by_a_backlog(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    # 200 readings/s of backlog drain: ~2,000 held readings take ~10 s, while live readings
    # (also 200/s) must keep flowing from the first second.
    config = write_node_config(
        tmp_path, port=mosquitto.port, rate=200, count=0, backlog_rate=200, resend_after_s=600
    )
    recorder = RecordingClient(mosquitto, clean_start=False, session_expiry_s=3600)
    with recorder, ReceiptStandin(mosquitto.host, mosquitto.port) as cloud:
        recorder.subscribe("machikado/v1/rr-01/data")
        mosquitto.stop()
        node = NodeProcess(config).start()
        wait_for("a backlog of 2,000 readings", lambda: node.stats().produced >= 2000, 60)
        backlog_last = node.stats().last_seq
        mosquitto.start()
        wait_for("the node to reconnect", lambda: node.link().get("connected") is True, 30)
        surely_live = node.stats().last_seq  # made after the connect: live
        wait_for(
            "the backlog to drain",
            lambda: cloud.seqs("rr-01", node.stats().stream) >= set(range(1, surely_live + 1)),
            120,
        )
        assert node.terminate() == 0
        order = [json.loads(m.payload)["seq"] for m in list(recorder.messages)]
    first_live = next(i for i, seq in enumerate(order) if seq > surely_live)
    backlog_after_live = [seq for seq in order[first_live:] if seq <= backlog_last]
    assert backlog_after_live, "live readings waited until the whole backlog was sent"
    assert set(range(1, backlog_last + 1)) <= set(order), "part of the backlog never went out"
