"""What the collector makes of one message: points tagged from the manifest, or reasons."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cloud.collector.intake import UNKNOWN_NODE, Accepted, Ignored, Intake, Rejected
from cloud.collector.points import (
    envelope_points,
    fleet_point,
    link_point,
    link_time_ns,
    time_ns,
)
from cloud.fleet import Fleet
from protocol import Birth, Reading, Topics, encode_envelope, encode_readings, parse_envelope
from protocol.limits import RESERVED_MEASUREMENTS, RESERVED_TAGS

NOW = datetime(2026, 11, 26, 7, 0, 0, 500000, tzinfo=UTC)
STREAM = "3f2a00000000000000000000000000aa"
FLEET = Fleet.model_validate(
    {
        "trials": [{"id": "restroom-health", "name": "R"}],
        "sites": [{"id": "doho", "name": "D", "trial": "restroom-health"}],
        "nodes": [{"id": "rr-02", "kind": "restroom", "trial": "restroom-health", "site": "doho"}],
    }
)


def envelope(node: str = "rr-02", seq: int = 5, **reading: object) -> bytes:
    r = Reading.model_validate(
        {
            "m": "visit",
            "at": NOW - timedelta(seconds=30),
            "sensor": "stall-1",
            "tags": {"stall": "1"},
            "fields": {"duration_s": 182.5, "n": 3},
            **reading,
        }
    )
    return encode_envelope(
        node=node,
        stream=STREAM,
        seq=seq,
        sent_at=NOW - timedelta(seconds=2),
        readings_json=encode_readings([r]),
    )


@pytest.fixture
def take() -> Intake:
    return Intake(Topics("machikado"), FLEET)


def test_reading_becomes_a_point_tagged_from_the_manifest(take: Intake) -> None:
    out = take("machikado/v1/rr-02/data", envelope(), NOW)
    assert isinstance(out, Accepted)
    visit, _link = out.points
    assert visit.measurement == "visit"
    assert dict(visit.tags) == {
        "node": "rr-02",
        "trial": "restroom-health",
        "site": "doho",
        "sensor": "stall-1",
        "stall": "1",
    }
    assert dict(visit.fields) == {"duration_s": 182.5, "n": 3}
    assert visit.time_ns == time_ns(NOW) - 30_000_000_000
    assert (out.node, out.stream, out.seq) == ("rr-02", STREAM, 5)


def test_each_delivery_yields_a_link_point_with_seq_and_latency(take: Intake) -> None:
    out = take("machikado/v1/rr-02/data", envelope(seq=9), NOW)
    assert isinstance(out, Accepted)
    link = out.points[-1]
    assert link.measurement == "link"
    assert dict(link.tags) == {"node": "rr-02", "stream": STREAM}
    assert dict(link.fields) == {"seq": 9, "readings": 1, "latency_s": 2.0}
    assert link.time_ns == time_ns(NOW - timedelta(seconds=2)) + 9


def test_envelopes_sent_in_one_go_keep_a_link_point_each() -> None:
    sent_at = NOW - timedelta(seconds=2)
    times = {link_time_ns(sent_at, seq) for seq in range(1, 1001)}
    assert len(times) == 1000
    assert all(t // 1000 == time_ns(sent_at) // 1000 for t in times)


def test_times_keep_every_microsecond() -> None:
    at = datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert time_ns(at) % 1_000_000_000 == 1000


def test_topic_and_payload_naming_different_nodes_is_rejected(take: Intake) -> None:
    out = take("machikado/v1/rr-02/data", envelope(node="rr-03"), NOW)
    assert isinstance(out, Rejected)
    assert out.reasons == ("node: payload says 'rr-03' but the topic says 'rr-02'",)
    assert (out.node, out.stream, out.seq) == ("rr-02", STREAM, 5)


def test_unknown_node_is_rejected_by_default(take: Intake) -> None:
    out = take("machikado/v1/rr-77/data", envelope(node="rr-77"), NOW)
    assert isinstance(out, Rejected)
    assert out.reasons == (UNKNOWN_NODE,)
    assert out.seq == 5


def test_unknown_node_is_stored_unassigned_when_accepted() -> None:
    take = Intake(Topics("machikado"), FLEET, unknown_nodes="accept")
    out = take("machikado/v1/rr-77/data", envelope(node="rr-77"), NOW)
    assert isinstance(out, Accepted)
    assert out.points[0].tags["trial"] == "unassigned"
    assert out.points[0].tags["site"] == "unassigned"


def test_contract_breaches_give_every_reason_and_what_is_known(take: Intake) -> None:
    payload = json.loads(envelope())
    payload["readings"][0]["fields"] = {"x": "bad\u0007", "time": 1}
    payload["readings"][0]["at"] = "2030-01-01T00:00:00.000000Z"
    out = take("machikado/v1/rr-02/data", json.dumps(payload).encode(), NOW)
    assert isinstance(out, Rejected)
    assert len(out.reasons) >= 2
    assert any("control character" in r for r in out.reasons)
    assert any("reserved" in r for r in out.reasons)
    assert (out.stream, out.seq) == (STREAM, 5)


def test_far_future_reading_is_rejected_against_the_receive_time(take: Intake) -> None:
    out = take("machikado/v1/rr-02/data", envelope(at=NOW + timedelta(hours=1)), NOW)
    assert isinstance(out, Rejected)
    assert "ahead of the receiver's clock" in out.reasons[0]


@pytest.mark.parametrize(
    ("topic", "payload", "why"),
    [
        ("machikado/v1/rr-02/data", b"not json", "Invalid JSON"),
        ("machikado/v1/RR 02/data", b"{}", "node id"),
        ("machikado/v1/rr-02/cmd/x", b"{}", "does not take 'cmd'"),
        ("machikado/v1/rr-02/state", b"sleepy", "neither 'online' nor 'offline'"),
        ("machikado/v1/rr-02/birth", b"{}", "kind"),
    ],
)
def test_garbage_is_rejected_with_a_reason(
    take: Intake, topic: str, payload: bytes, why: str
) -> None:
    out = take(topic, payload, NOW)
    assert isinstance(out, Rejected)
    assert why in "; ".join(out.reasons)


def test_birth_and_state_become_fleet_state_points(take: Intake) -> None:
    birth = Birth(
        node="rr-02",
        kind="restroom",
        software="0.1.0",
        config_digest="a" * 64,
        stream=STREAM,
        boot_at=NOW,
    )
    b = take("machikado/v1/rr-02/birth", birth.model_dump_json().encode(), NOW)
    s = take("machikado/v1/rr-02/state", b"offline", NOW)
    assert isinstance(b, Accepted)
    assert isinstance(s, Accepted)
    [bp], [sp] = b.points, s.points
    assert bp.measurement == sp.measurement == "fleet_state"
    assert dict(bp.tags) == {
        "node": "rr-02",
        "trial": "restroom-health",
        "site": "doho",
        "kind": "restroom",
    }
    assert dict(bp.fields) == {"software": "0.1.0", "stream": STREAM, "config_digest": "a" * 64}
    assert dict(sp.fields) == {"online": False}
    assert sp.time_ns == time_ns(NOW)


def test_birth_claiming_another_node_is_rejected(take: Intake) -> None:
    birth = Birth(
        node="rr-03",
        kind="restroom",
        software="1",
        config_digest="a" * 64,
        stream=STREAM,
        boot_at=NOW,
    )
    out = take("machikado/v1/rr-02/birth", birth.model_dump_json().encode(), NOW)
    assert isinstance(out, Rejected)
    assert "topic says 'rr-02'" in out.reasons[0]


def test_cleared_retained_message_is_ignored(take: Intake) -> None:
    assert isinstance(take("machikado/v1/rr-02/state", b"", NOW), Ignored)


def _raw_envelope(node: str, reading: dict[str, object]) -> bytes:
    """An envelope written by hand: the models would refuse to build these readings."""
    doc = {
        "v": 1,
        "node": node,
        "stream": STREAM,
        "seq": 9,
        "sent_at": "2026-11-26T06:59:58.000000Z",
        "readings": [
            {"m": "visit", "at": "2026-11-26T06:59:30.000000Z", "fields": {"n": 1}},
            {"at": "2026-11-26T06:59:30.000000Z", "fields": {"n": 1}, **reading},
        ],
    }
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        ({"m": "link"}, "readings[1].m: measurement 'link' is reserved for the cloud"),
        ({"m": "fleet_state"}, "readings[1].m: measurement 'fleet_state' is reserved"),
        (
            {"m": "visit", "tags": {"kind": "station"}},
            "readings[1].tags.kind (the key): tag key 'kind' is reserved for the cloud",
        ),
        (
            {"m": "visit", "tags": {"stream": "x"}},
            "readings[1].tags.stream (the key): tag key 'stream' is reserved for the cloud",
        ),
    ],
)
def test_a_node_writing_what_the_cloud_derives_is_dead_lettered_on_every_path(
    take: Intake, reading: dict[str, object], reason: str
) -> None:
    # The first reading teaches the line path this node's usual shape; the forged one must
    # still be refused, with the models' reason.
    assert isinstance(take("machikado/v1/rr-02/data", envelope(), NOW), Accepted)

    out = take("machikado/v1/rr-02/data", _raw_envelope("rr-02", reading), NOW)

    assert isinstance(out, Rejected)
    assert len(out.reasons) == 1
    assert out.reasons[0].startswith(reason)
    assert (out.node, out.stream, out.seq) == ("rr-02", STREAM, 9)


def test_what_the_cloud_writes_itself_uses_only_reserved_names() -> None:
    where = FLEET.assignment("rr-02")
    assert where is not None
    link = link_point("rr-02", STREAM, 1, 0, 1, 0)
    fleet = fleet_point("rr-02", where, {"online": True}, NOW)
    env = parse_envelope(envelope(), now=NOW)
    [reading, *_] = envelope_points(env, where=where, received_at=NOW)

    assert {link.measurement, fleet.measurement} <= RESERVED_MEASUREMENTS
    assert set(link.tags) | set(fleet.tags) <= RESERVED_TAGS
    assert set(reading.tags) - set(env.readings[0].tags) <= RESERVED_TAGS
