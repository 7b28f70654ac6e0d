"""The node loses nothing: every seq it produces reaches the broker, and its outbox empties.

Each test runs a real node process against the real Mosquitto, with the receipt stand-in as the
cloud, and breaks something on the way: the broker, the node itself, the receipts.
"""

from __future__ import annotations

import threading
import time

import pytest

from edge.standin import ReceiptStandin
from tests.integration.nodes import NodeProcess, wait_for, write_node_config
from tests.services import MosquittoServer

pytestmark = pytest.mark.integration


def everything_arrived(node: NodeProcess, cloud: ReceiptStandin) -> bool:
    stats = node.stats()
    return (
        stats.last_seq > 0
        and cloud.seqs(node.cfg.node.id, stats.stream) >= set(range(1, stats.last_seq + 1))
        and stats.pending_rows == 0
    )


def assert_lossless(node: NodeProcess, cloud: ReceiptStandin, *, synthetic: int) -> None:
    stats = node.stats()
    got = cloud.seqs(node.cfg.node.id, stats.stream)
    missing = set(range(1, stats.last_seq + 1)) - got
    assert not missing, f"seqs never reached the broker: {sorted(missing)[:20]}"
    assert stats.pending_rows == 0
    assert stats.dropped == 0
    assert stats.receipted == stats.produced
    tally = cloud.tally[(node.cfg.node.id, stats.stream)]
    assert tally.synthetic_ns >= set(range(1, synthetic + 1))
    assert not cloud.invalid


def hold_outage(seconds: float, node: NodeProcess) -> None:
    """Keep the outage for ``seconds`` while checking that the node stays up and keeps producing."""
    before = node.stats().produced
    end = time.monotonic() + seconds
    tick = threading.Event()
    while time.monotonic() < end:
        node.assert_alive()
        tick.wait(1.0)
    assert node.stats().produced > before, "the node stopped producing during the outage"


def test_reading_survives_broker_stopped_for_30s(mosquitto: MosquittoServer, tmp_path) -> None:
    count = 4000
    # Resends after 10 minutes only: the backlog must drain because the node sends it on
    # reconnect, not because a timer fires.
    node = NodeProcess(
        write_node_config(tmp_path, port=mosquitto.port, rate=100, count=count, resend_after_s=600)
    )
    with ReceiptStandin(mosquitto.host, mosquitto.port) as cloud:
        node.start()
        wait_for("first receipts", lambda: node.stats().receipted > 0, 30)
        mosquitto.stop()
        hold_outage(30, node)
        held = node.stats().pending_readings
        assert held > 0, "readings produced during the outage should wait in the outbox"
        mosquitto.start()
        wait_for("all readings produced", lambda: node.stats().produced >= count, 120)
        wait_for("outbox drained", lambda: everything_arrived(node, cloud), 120)
        # The status file is rewritten every tick, and a drain can be quicker than that.
        wait_for("status shows the reconnect", lambda: node.link().get("connects", 0) >= 2, 10)
        wait_for("no envelope left unacknowledged", lambda: node.link()["inflight"] == 0, 10)
        status = node.status_json()
        assert node.terminate() == 0
    assert_lossless(node, cloud, synthetic=count)
    assert status["pending_rows"] == 0
    assert status["node"] == "rr-01"
    print("edge status after the outage:", status)


def test_reading_survives_agent_sigkill_mid_publish(mosquitto: MosquittoServer, tmp_path) -> None:
    config = write_node_config(
        tmp_path, port=mosquitto.port, rate=2000, count=20000, resend_after_s=600
    )
    with ReceiptStandin(mosquitto.host, mosquitto.port) as cloud:
        first = NodeProcess(config).start()
        wait_for("publishing under way", lambda: first.stats().receipted >= 2000, 60)
        first.kill()
        killed_at = first.stats()
        assert killed_at.produced < 20000, "the kill should land mid-stream"
        second = NodeProcess(config).start()
        assert second.stats().stream == killed_at.stream, "the stream survives the restart"
        wait_for(
            "second run produced",
            lambda: second.stats().produced >= killed_at.produced + 20000,
            120,
        )
        wait_for("outbox drained", lambda: everything_arrived(second, cloud), 120)
        assert second.terminate() == 0
    stats = second.stats()
    got = cloud.seqs("rr-01", stats.stream)
    assert got == set(range(1, stats.last_seq + 1))
    assert stats.pending_rows == 0
    assert stats.receipted == stats.produced
    assert not cloud.invalid


def test_backlog_of_10000_readings_made_offline_drains(
    mosquitto: MosquittoServer, tmp_path
) -> None:
    mosquitto.stop()
    count = 10_000
    node = NodeProcess(
        write_node_config(tmp_path, port=mosquitto.port, rate=5000, count=count, resend_after_s=600)
    )
    node.start()
    wait_for("10,000 readings held offline", lambda: node.stats().produced >= count, 60)
    assert node.stats().pending_readings >= count
    mosquitto.start()
    with ReceiptStandin(mosquitto.host, mosquitto.port) as cloud:
        wait_for("outbox drained", lambda: everything_arrived(node, cloud), 120)
        assert node.terminate() == 0
    assert_lossless(node, cloud, synthetic=count)


def test_lost_receipt_makes_the_node_send_again(mosquitto: MosquittoServer, tmp_path) -> None:
    count = 300
    node = NodeProcess(
        write_node_config(tmp_path, port=mosquitto.port, rate=100, count=count, resend_after_s=1)
    )
    with ReceiptStandin(mosquitto.host, mosquitto.port, lose_receipts=3) as cloud:
        node.start()
        wait_for("all readings produced", lambda: node.stats().produced >= count, 60)
        wait_for("outbox drained", lambda: everything_arrived(node, cloud), 60)
        assert node.terminate() == 0
    assert cloud.receipts_lost == 3
    stats = node.stats()
    assert sum(t.duplicates for t in cloud.tally.values()) >= 3, "lost receipts mean resends"
    assert stats.sent > stats.produced
    assert_lossless(node, cloud, synthetic=count)
