"""The collector against the real Mosquitto: ack only after the write, receipts, dead letters.

The collector runs in this process on a fake store that can be switched down; the broker is
real, so what is and is not acked is what Mosquitto saw (its log records each PUBACK).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.collector import Collector, Intake
from cloud.collector.batch import BatchWriter
from cloud.collector.checking import LocalChecker
from cloud.collector.settings import BatchSection, MqttSection
from cloud.deadletter import DEFAULT_POLICY, DeadLetters, Policy
from cloud.fleet import Fleet
from protocol import Birth, Reading, Receipt, Topics, encode_envelope, encode_readings
from tests.cloud.collector_fakes import FakeStore
from tests.integration.nodes import wait_for
from tests.services import MosquittoServer, RecordingClient

pytestmark = pytest.mark.integration

STREAM = "stream-00000000000000000001"
FLEET = Fleet.model_validate(
    {
        "trials": [{"id": "t", "name": "T"}],
        "sites": [{"id": "s", "name": "S", "trial": "t"}],
        "nodes": [{"id": "rr-01", "kind": "kiosk", "trial": "t", "site": "s"}],
    }
)


#: Readings are dated from one instant, a millisecond apart by seq: two messages built in the
#: same tick must never share a series and time, or the store would keep only one of them.
EPOCH = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


def envelope(seq: int, node: str = "rr-01") -> bytes:
    now = datetime.now(UTC)
    reading = Reading(
        m="synthetic", at=EPOCH + timedelta(milliseconds=seq), fields={"n": seq, "v": seq / 3}
    )
    return encode_envelope(
        node=node, stream=STREAM, seq=seq, sent_at=now, readings_json=encode_readings([reading])
    )


def pubacks_from(broker: MosquittoServer, client_id: str) -> int:
    return broker.log_path.read_text(errors="replace").count(f"Received PUBACK from {client_id} ")


def sent_to(broker: MosquittoServer, client_id: str) -> int:
    return broker.log_path.read_text(errors="replace").count(f"Sending PUBLISH to {client_id} ")


class Rig:
    """One collector on the test broker, its fake store and dead-letter store."""

    def __init__(
        self,
        broker: MosquittoServer,
        tmp: Path,
        *,
        dead_letter_policy: Policy = DEFAULT_POLICY,
        **options: object,
    ) -> None:
        self.broker = broker
        self.store = FakeStore()
        # The rate of full dead letters per node counts in minutes: it must not refill meanwhile.
        self.dead_letters = DeadLetters(tmp / "dl.sqlite", policy=dead_letter_policy, clock=_never)
        mqtt_opts = {k: v for k, v in options.items() if k in MqttSection.model_fields}
        batch_opts = {k: v for k, v in options.items() if k in BatchSection.model_fields}
        self.mqtt = MqttSection(
            host=broker.host,
            port=broker.port,
            keepalive_s=5,
            **mqtt_opts,
        )
        self.batch = BatchSection(**batch_opts)
        self.unknown = options.get("unknown_nodes", "reject")

    @contextmanager
    def running(self) -> Iterator[Collector]:
        writer = BatchWriter(self.store, self.dead_letters, initial_s=0.02, max_s=0.1)
        intake = Intake(Topics("machikado"), FLEET, unknown_nodes=self.unknown)  # type: ignore[arg-type]
        collector = Collector(
            mqtt=self.mqtt, batch=self.batch, checker=LocalChecker(intake, writer)
        )
        stop = threading.Event()
        thread = threading.Thread(target=collector.run, args=(stop,), daemon=True)
        thread.start()
        try:
            assert collector.subscribed.wait(10), "the collector never subscribed"
            yield collector
        finally:
            stop.set()
            thread.join(30)
            assert not thread.is_alive(), "the collector did not stop"


def _never() -> float:
    return 0.0


@pytest.fixture
def rig(mosquitto: MosquittoServer, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(mosquitto, tmp_path)
    yield r
    r.dead_letters.close()


def receipt_seqs(node: RecordingClient, topic: str) -> set[int]:
    seqs: set[int] = set()
    for m in list(node.messages):
        if m.topic == topic:
            r = Receipt.model_validate_json(m.payload)
            seqs |= {s for lo, hi in r.ranges for s in range(lo, hi + 1)}
    return seqs


def test_stored_message_is_acked_and_receipted(rig: Rig) -> None:
    with RecordingClient(rig.broker) as node, rig.running() as collector:
        node.subscribe("machikado/v1/rr-01/receipt")
        node.publish("machikado/v1/rr-01/data", envelope(1))
        receipt = Receipt.model_validate_json(
            node.wait_for_message("machikado/v1/rr-01/receipt").payload
        )
        assert receipt.stream == STREAM
        assert receipt.covers(1)
        [point] = rig.store.of("synthetic")
        assert point.fields == {"n": 1, "v": 1 / 3}
        assert point.tags["trial"] == "t"
        assert collector.counters.acked == 1
    assert pubacks_from(rig.broker, "machikado-collector") == 1


def test_store_down_acks_nothing_and_store_back_writes_everything(rig: Rig) -> None:
    receipts = "machikado/v1/rr-01/receipt"
    with RecordingClient(rig.broker) as node:
        node.subscribe(receipts)
        rig.store.down = True
        with rig.running() as collector:
            for seq in range(1, 21):
                node.publish("machikado/v1/rr-01/data", envelope(seq))
            wait_for(
                "all 20 handed over", lambda: sent_to(rig.broker, "machikado-collector") == 20, 20
            )
            wait_for("the store failing", lambda: rig.store.failed_writes >= 3, 20)
            assert collector.counters.acked == 0
            assert pubacks_from(rig.broker, "machikado-collector") == 0
            assert receipt_seqs(node, receipts) == set()
            rig.store.down = False
            wait_for("20 readings stored", lambda: len(rig.store.of("synthetic")) == 20, 20)
            wait_for(
                "receipts for 1..20", lambda: receipt_seqs(node, receipts) == set(range(1, 21)), 20
            )
            wait_for("20 acks", lambda: collector.counters.acked == 20, 10)
        assert collector.counters.store_retries >= 3
    wait_for(
        "the broker saw 20 acks", lambda: pubacks_from(rig.broker, "machikado-collector") == 20, 10
    )


def test_unacked_messages_go_to_the_next_collector(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    # The first collector cannot write and stops giving up at once: nothing it took is acked,
    # so the broker delivers all of it again to the next collector of the same session.
    first = Rig(mosquitto, tmp_path / "a", drain_timeout_s=0)
    first.store.down = True
    with RecordingClient(mosquitto) as node:
        with first.running() as collector:
            for seq in range(1, 11):
                node.publish("machikado/v1/rr-01/data", envelope(seq))
            wait_for("10 received", lambda: collector.counters.received == 10, 20)
        second = Rig(mosquitto, tmp_path / "b")
        with second.running():
            wait_for("10 stored", lambda: len(second.store.of("synthetic")) == 10, 20)
            wait_for("10 link points", lambda: len(second.store.of("link")) == 10, 20)
    assert first.store.of("synthetic") == []
    first.dead_letters.close()
    second.dead_letters.close()


def test_stop_while_the_store_is_down_returns_after_the_drain_timeout_unacked(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    rig = Rig(mosquitto, tmp_path, drain_timeout_s=0.5)
    rig.store.down = True
    with RecordingClient(mosquitto) as node, rig.running() as collector:
        node.publish("machikado/v1/rr-01/data", envelope(1))
        wait_for("the store failing", lambda: rig.store.failed_writes >= 2, 20)
    # running() has joined the collector's thread: it returned although the store is down
    assert collector.counters.acked == 0
    assert pubacks_from(mosquitto, "machikado-collector") == 0
    assert rig.dead_letters.count() == 0
    rig.dead_letters.close()


def test_broker_holds_back_beyond_max_inflight(mosquitto: MosquittoServer, tmp_path: Path) -> None:
    rig = Rig(mosquitto, tmp_path, max_inflight=5)
    rig.store.down = True
    with RecordingClient(mosquitto) as node, rig.running() as collector:
        for seq in range(1, 31):
            node.publish("machikado/v1/rr-01/data", envelope(seq))
        wait_for("5 received", lambda: collector.counters.received >= 5, 20)
        wait_for("the store failing", lambda: rig.store.failed_writes >= 5, 20)
        assert collector.counters.received == 5
        assert sent_to(mosquitto, "machikado-collector") == 5
        rig.store.down = False
        wait_for("30 stored", lambda: len(rig.store.of("synthetic")) == 30, 30)
        assert collector.counters.batches >= 6
    rig.dead_letters.close()


def test_bad_messages_are_dead_lettered_acked_and_receipted_when_known(rig: Rig) -> None:
    with RecordingClient(rig.broker) as node, rig.running() as collector:
        node.subscribe("machikado/v1/+/receipt")
        node.publish("machikado/v1/rr-01/data", b"{not json")
        node.publish("machikado/v1/rr-01/data", envelope(3, node="rr-02"))  # spoofed payload
        node.publish("machikado/v1/rr-09/data", envelope(4, node="rr-09"))  # unknown node
        node.publish("machikado/v1/rr-01/data", envelope(5))
        wait_for("3 dead letters", lambda: rig.dead_letters.count() == 3, 20)
        wait_for("4 acks", lambda: collector.counters.acked == 4, 20)
        by_seq = {r.seq: r for r in rig.dead_letters.records()}
        assert "Invalid JSON" in by_seq[None].reasons[0]
        assert by_seq[3].reasons == ("node: payload says 'rr-02' but the topic says 'rr-01'",)
        assert by_seq[4].reasons == ("unknown node",)
        assert by_seq[4].node == "rr-09"
        wait_for(
            "receipts for the stored one and the held ones",
            lambda: (
                receipt_seqs(node, "machikado/v1/rr-01/receipt") == {3, 5}
                and receipt_seqs(node, "machikado/v1/rr-09/receipt") == {4}
            ),
            20,
        )
        assert [int(p.fields["n"]) for p in rig.store.of("synthetic")] == [5]
    assert pubacks_from(rig.broker, "machikado-collector") == 4


def test_a_node_past_its_rate_of_dead_letters_gets_brief_ones_counted_in_the_status(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    rig = Rig(mosquitto, tmp_path, dead_letter_policy=Policy(rate_per_minute=1, burst=3))
    with RecordingClient(rig.broker) as node, rig.running() as collector:
        for seq in range(1, 11):
            forged = envelope(seq).replace(b'"m":"synthetic"', b'"m":"link"')
            node.publish("machikado/v1/rr-01/data", forged)
        wait_for("10 dead letters", lambda: collector.counters.dead_letters == 10, 20)
        facts = collector.status_facts()
    records = rig.dead_letters.records()
    rig.dead_letters.close()

    assert (facts["dead_letters"], facts["dead_letters_brief"]) == (10, 7)
    assert [(r.seq, r.kept) for r in records] == [
        (seq, "full" if seq <= 3 else "brief") for seq in range(1, 11)
    ]


def test_unknown_node_is_stored_unassigned_when_so_configured(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    rig = Rig(mosquitto, tmp_path, unknown_nodes="accept")
    with RecordingClient(mosquitto) as node, rig.running():
        node.publish("machikado/v1/rr-09/data", envelope(1, node="rr-09"))
        wait_for("stored", lambda: len(rig.store.of("synthetic")) == 1, 20)
    [point] = rig.store.of("synthetic")
    assert (point.tags["trial"], point.tags["site"]) == ("unassigned", "unassigned")
    assert rig.dead_letters.count() == 0
    rig.dead_letters.close()


def test_two_collectors_on_a_shared_subscription_split_the_data(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    a = Rig(mosquitto, tmp_path / "a", shared_group="collectors", client_id="collector-a")
    b = Rig(mosquitto, tmp_path / "b", shared_group="collectors", client_id="collector-b")
    b.store = a.store
    with RecordingClient(mosquitto) as node, a.running() as ca, b.running() as cb:
        node.subscribe("machikado/v1/rr-01/receipt")
        for seq in range(1, 101):
            node.publish("machikado/v1/rr-01/data", envelope(seq))
        wait_for("100 stored", lambda: len(a.store.of("synthetic")) == 100, 30)
        wait_for(
            "receipts for all 100",
            lambda: receipt_seqs(node, "machikado/v1/rr-01/receipt") == set(range(1, 101)),
            20,
        )
        wait_for("100 acks", lambda: ca.counters.acked + cb.counters.acked == 100, 20)
    data = ca.counters.stored + cb.counters.stored
    assert data == 100, "each message went to exactly one collector"
    assert ca.counters.stored > 0
    assert cb.counters.stored > 0
    a.dead_letters.close()
    b.dead_letters.close()


def test_shared_collector_learns_births_retained_before_it_started(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    birth = Birth(
        node="rr-01",
        kind="kiosk",
        software="0.1.0",
        config_digest="b" * 64,
        stream=STREAM,
        boot_at=datetime.now(UTC),
    )
    with RecordingClient(mosquitto) as node:
        node._client.publish(
            "machikado/v1/rr-01/birth", birth.model_dump_json(), qos=1, retain=True
        )
        node._client.publish("machikado/v1/rr-01/state", b"online", qos=1, retain=True)
        wait_for("retained published", lambda: len(node._pubacks) == 2, 10)
    rig = Rig(mosquitto, tmp_path, shared_group="collectors")
    with rig.running():
        wait_for(
            "fleet state from birth and state", lambda: len(rig.store.of("fleet_state")) >= 2, 20
        )
    fields: dict[str, object] = {}
    for p in rig.store.of("fleet_state"):
        fields.update(p.fields)
    assert fields == {
        "software": "0.1.0",
        "stream": STREAM,
        "config_digest": "b" * 64,
        "online": True,
    }
    rig.dead_letters.close()
