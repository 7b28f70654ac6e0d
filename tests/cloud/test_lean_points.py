"""The collector's lean path stores what the point path stores: same points, same line protocol."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cloud.collector.batch import BatchWriter, LineStore, Message
from cloud.collector.intake import Accepted, Intake
from cloud.collector.points import EnvelopePoints, envelope_lines, envelope_points
from cloud.deadletter import DeadLetters
from cloud.errors import PointsRejected
from cloud.fleet import Assignment, Fleet
from cloud.store.base import Point
from cloud.store.influx_v1 import InfluxV1Store, _joined
from cloud.store.lineprotocol import encode_points
from protocol import Reading, Topics, encode_envelope, encode_readings, parse_envelope
from protocol.codec import parse_envelope_lean, time_us
from protocol.limits import Limits
from tests.cloud.collector_fakes import FakeStore
from tests.services import InfluxServer

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
STREAM = "0123456789abcdef0123456789abcdef"
WHERE = Assignment(trial="t 1", site="つくば駅,A=B", kind="restroom")
FLEET = Fleet.model_validate(
    {
        "trials": [{"id": "t", "name": "T"}],
        "sites": [{"id": "s", "name": "S", "trial": "t"}],
        "nodes": [
            {"id": "rr-01", "kind": "kiosk", "trial": "t", "site": "s"},
            {"id": "rr-02", "kind": "kiosk", "trial": "t", "site": "s"},
        ],
    }
)
TAKE = Intake(Topics("machikado"), FLEET)
#: Every time InfluxDB can hold is inside this window around NOW.
WIDE = Limits(max_future_skew=timedelta(days=366 * 300), max_age=timedelta(days=366 * 450))

_keys = st.sampled_from(["n", "value", "ok", "Time", "s_2", "x" * 64])
_texts = st.one_of(
    st.sampled_from(["a", "a b,c=d", 'q"', "a\\b", "つくば駅", "\u00a0", "#x", "x" * 128]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1, max_size=8),
)
_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _texts,
    st.sampled_from(["", "line\nbreak", 'a "quoted" \\ b']),
)
_times = st.datetimes(
    min_value=datetime(1600, 1, 1), max_value=datetime(2300, 1, 1), timezones=st.just(UTC)
)


@st.composite
def _readings(draw: st.DrawFn) -> Reading:
    try:
        return Reading(
            m=draw(st.sampled_from(["visit", "air", "m" * 64])),
            at=draw(_times),
            sensor=draw(st.none() | _texts),
            tags=draw(st.dictionaries(st.sampled_from(["stall", "floor", "where"]), _texts)),
            fields=draw(st.dictionaries(_keys, _values, min_size=1, max_size=4)),
        )
    except ValidationError:
        assume(False)
        raise


@st.composite
def _envelopes(draw: st.DrawFn) -> bytes:
    return encode_envelope(
        node="rr-01",
        stream=STREAM,
        seq=draw(st.integers(min_value=1, max_value=2**63 - 1)),
        sent_at=draw(_times),
        readings_json=encode_readings(draw(st.lists(_readings(), min_size=1, max_size=5))),
    )


def _encoded(points: Sequence[Point]) -> bytes | None:
    try:
        return encode_points(points)
    except PointsRejected:
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_envelopes(), _times)
def test_lean_points_and_lines_are_the_point_paths(payload: bytes, received_at: datetime) -> None:
    reference = envelope_points(
        parse_envelope(payload, now=NOW, limits=WIDE), where=WHERE, received_at=received_at
    )
    lean = parse_envelope_lean(payload, now=NOW, limits=WIDE)
    assert list(EnvelopePoints(lean, WHERE, received_at)) == reference
    lines = envelope_lines(lean, WHERE, time_us(received_at))
    if lines is not None:
        assert lines == encode_points(reference)
    else:
        # Declined: the store's full checks decide (a time InfluxDB cannot hold, a surrogate).
        assert _encoded(reference) is None


def test_points_are_made_only_when_asked_and_index_like_a_list() -> None:
    payload = _payload(3, seq=42)
    lean = parse_envelope_lean(payload, now=NOW)
    points = EnvelopePoints(lean, WHERE, NOW + timedelta(seconds=2))
    assert len(points) == 4
    link = points[-1]
    assert (link.measurement, link.fields) == ("link", {"seq": 42, "readings": 3, "latency_s": 2.0})
    assert points[:3] == list(points)[:3]
    assert [p.fields["n"] for p in points[:3]] == [0, 1, 2]


def _payload(n: int, *, seq: int = 1, node: str = "rr-01", s: str = "plain") -> bytes:
    readings = [
        Reading(m="visit", at=NOW - timedelta(seconds=i), sensor="a b", fields={"n": i, "s": s})
        for i in range(n)
    ]
    return encode_envelope(
        node=node, stream=STREAM, seq=seq, sent_at=NOW, readings_json=encode_readings(readings)
    )


def _message(payload: bytes, seq: int, node: str = "rr-01") -> Message:
    topic = f"machikado/v1/{node}/data"
    return Message(topic, payload, NOW, TAKE(topic, payload, NOW), mid=seq, qos=1)


class LineFakeStore(FakeStore):
    """A FakeStore that also takes line protocol, recording each call's bodies."""

    def __init__(self) -> None:
        super().__init__()
        self.line_writes: list[list[bytes]] = []
        self.refuse_lines = False

    def write_lines(self, bodies: Sequence[bytes]) -> None:
        if self.refuse_lines:
            raise PointsRejected(["influxd: partial write"])
        self.line_writes.append(list(bodies))


@pytest.fixture
def dead_letters(tmp_path: Path) -> Any:
    with DeadLetters(tmp_path / "dl.sqlite") as dl:
        yield dl


def test_a_batch_goes_to_a_line_store_as_one_write_of_the_same_line_protocol(
    dead_letters: DeadLetters,
) -> None:
    store = LineFakeStore()
    assert isinstance(store, LineStore)
    msgs = [_message(_payload(10, seq=s), s) for s in (1, 2)]
    msgs.append(_message(_payload(2, seq=1, node="rr-02"), 3, node="rr-02"))
    written = BatchWriter(store, dead_letters, initial_s=0.01, max_s=0.05).write(msgs)
    assert written.seqs == {("rr-01", STREAM): {1, 2}, ("rr-02", STREAM): {1}}
    assert written.points == 11 + 11 + 3
    [bodies] = store.line_writes
    points = [p for m in msgs for p in _outcome(m).points]
    seen = [_outcome(msgs[1]).seen, _outcome(msgs[2]).seen]  # the newest per node
    assert b"".join(bodies) == encode_points(points + [p for p in seen if p is not None])
    assert store.points == {}  # nothing went the point way


def test_lines_refused_by_the_store_are_isolated_message_by_message(
    dead_letters: DeadLetters,
) -> None:
    store = LineFakeStore()
    store.refuse_lines = True
    store.refuse = lambda p: "no 13" if p.fields.get("s") == "thirteen" else None
    good, bad = _message(_payload(2, seq=1), 1), _message(_payload(2, seq=2, s="thirteen"), 2)
    written = BatchWriter(store, dead_letters, initial_s=0.01, max_s=0.05).write([good, bad])
    assert written.stored == 1
    assert written.dead_lettered == 1
    assert [p.fields["n"] for p in store.of("visit")] == [0, 1]
    assert [r.seq for r in dead_letters.records()] == [2]


def test_a_message_its_lines_cannot_carry_goes_the_point_way() -> None:
    # Valid by a contract with these limits, but before the earliest time InfluxDB holds.
    take = Intake(Topics("machikado"), FLEET, limits=WIDE)
    reading = Reading(m="visit", at=datetime(1650, 1, 1, tzinfo=UTC), fields={"n": 1})
    payload = encode_envelope(
        node="rr-01", stream=STREAM, seq=1, sent_at=NOW, readings_json=encode_readings([reading])
    )
    out = take("machikado/v1/rr-01/data", payload, NOW)
    assert isinstance(out, Accepted)
    assert out.lines is None
    with pytest.raises(PointsRejected, match="outside what InfluxDB stores"):
        encode_points(out.points)


def test_request_bodies_are_joined_up_to_the_limit_at_message_boundaries() -> None:
    bodies = [b"a\n" * 3, b"b\n" * 2, b"", b"c\n" * 10, b"d\n"]
    assert list(_joined(bodies, 10)) == [b"a\n" * 3 + b"b\n" * 2, b"c\n" * 10, b"d\n"]
    assert list(_joined(bodies, 100)) == [b"".join(bodies)]
    assert list(_joined([], 10)) == []


@pytest.mark.integration
def test_influx_v1_stores_lines_as_it_stores_points(influxdb: InfluxServer) -> None:
    lines_db = InfluxV1Store(influxdb.url, database="by_lines")
    points_db = InfluxV1Store(influxdb.url, database="by_points")
    outs = [_outcome(_message(_payload(10, seq=s, s='a "q" b'), s)) for s in (1, 2, 3)]
    lines_db.write_lines([o.lines for o in outs if o.lines is not None])
    points_db.write([p for o in outs for p in o.points])
    for measurement in ("visit", "link"):
        q = f'SELECT * FROM "{measurement}"'
        by_lines = influxdb.query(q, db="by_lines", epoch="ns")["results"][0]["series"]
        by_points = influxdb.query(q, db="by_points", epoch="ns")["results"][0]["series"]
        assert by_lines == by_points
    assert lines_db.count("visit", by=None) == {"": 10}  # the same 10 readings, sent 3 times
    assert lines_db.count("link", by=None) == {"": 3}
    lines_db.close()
    points_db.close()


def _outcome(msg: Message) -> Accepted:
    assert isinstance(msg.outcome, Accepted)
    return msg.outcome
