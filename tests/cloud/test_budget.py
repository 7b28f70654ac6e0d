"""Budgets per node: a node cannot create more measurements, tag keys, tag values or series than
the manifest gives it; past that its message is dead-lettered whole, naming the budget, and its
other data keeps flowing, on the line path as on the full path, across restarts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.collector.budget import Usage
from cloud.collector.intake import Accepted, Intake, Outcome, Rejected
from cloud.fleet import Fleet
from cloud.store.base import Point
from cloud.store.sqlite import SqliteStore
from protocol import Topics
from protocol.limits import DEFAULT_BUDGET, Budget
from tests.cloud.harness import (
    CollectorProcess,
    influx_rows,
    influx_store,
    reaping,
    write_collector_config,
    write_fleet,
)
from tests.integration.nodes import wait_for
from tests.services import InfluxServer, MosquittoServer, RecordingClient, ServiceError

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
STREAM = "0123456789abcdef"
SMALL = {"measurements": 2, "tag_keys": 2, "tag_values": 5, "series": 4}


def fleet(budgets: dict[str, Any] | None = None, **node_budgets: dict[str, int]) -> Fleet:
    nodes: list[dict[str, Any]] = [
        {"id": n, "kind": "restroom", "trial": "t", "site": "s"} for n in ("rr-01", "rr-02")
    ]
    nodes.append({"id": "st-01", "kind": "station", "trial": "t", "site": "s"})
    for node in nodes:
        if node["id"] in node_budgets:
            node["budget"] = node_budgets[node["id"]]
    return Fleet.model_validate(
        {
            "trials": [{"id": "t", "name": "T"}],
            "sites": [{"id": "s", "name": "S", "trial": "t"}],
            "nodes": nodes,
            "budgets": budgets or {},
        }
    )


def reading(m: str = "visit", sensor: str | None = None, **tags: str) -> dict[str, Any]:
    r: dict[str, Any] = {"m": m, "at": "2026-11-26T06:59:00.000000Z", "fields": {"n": 1}}
    if sensor is not None:
        r["sensor"] = sensor
    if tags:
        r["tags"] = tags
    return r


def envelope(node: str, seq: int, readings: Sequence[dict[str, Any]]) -> bytes:
    doc = {
        "v": 1,
        "node": node,
        "stream": STREAM,
        "seq": seq,
        "sent_at": "2026-11-26T06:59:30.000000Z",
        "readings": list(readings),
    }
    return json.dumps(doc).encode()


def send(take: Intake, node: str, seq: int, *readings: dict[str, Any]) -> Outcome:
    return take(f"machikado/v1/{node}/data", envelope(node, seq, readings), NOW)


@pytest.fixture(params=[True, False], ids=["line path", "full path"])
def take(request: pytest.FixtureRequest) -> Intake:
    return Intake(Topics("machikado"), fleet(SMALL), line_path=request.param)


def test_a_message_past_the_series_budget_is_refused_whole_and_later_ones_flow(
    take: Intake,
) -> None:
    assert isinstance(send(take, "rr-01", 1, *(reading(stall=str(i)) for i in range(3))), Accepted)

    over = send(take, "rr-01", 2, reading(stall="0"), reading(stall="x"), reading(stall="y"))

    assert isinstance(over, Rejected)
    assert over.reasons[0] == (
        "readings[2]: the series budget of node 'rr-01' (4) is used up:"
        " 'visit' {'stall': 'y'} would be one more"
    )
    assert (over.node, over.stream, over.seq) == ("rr-01", STREAM, 2)
    # Nothing of the refused message was counted: one new series still fits ...
    assert isinstance(send(take, "rr-01", 3, reading(stall="x")), Accepted)
    # ... the known ones keep flowing once the budget is used up, and other nodes are apart.
    assert isinstance(send(take, "rr-01", 4, reading(stall="0"), reading(stall="x")), Accepted)
    assert isinstance(send(take, "rr-01", 5, reading(stall="z")), Rejected)
    assert isinstance(send(take, "rr-02", 1, reading(stall="z")), Accepted)


@pytest.mark.parametrize(
    ("readings", "reason"),
    [
        (
            [reading("a"), reading("b"), reading("c")],
            "readings[2].m: the measurements budget of node 'rr-01' (2) is used up:"
            " 'c' would be one more",
        ),
        (
            [reading(x="1", y="1"), reading(z="1")],
            "readings[1].tags.z: the tag keys budget of node 'rr-01' (2) is used up:"
            " 'z' would be one more",
        ),
        (
            [reading(sensor="s1", x="1"), reading(sensor="s2", y="1")],
            "readings[1].tags.y: the tag keys budget of node 'rr-01' (2) is used up:"
            " 'y' would be one more",
        ),
        (
            [reading(x=str(i)) for i in range(6)],
            "readings[5].tags.x: the tag values budget of node 'rr-01' (5 per key) is used up:"
            " 'x' = '5' would be one more",
        ),
        (
            [reading(sensor=f"s{i}") for i in range(6)],
            "readings[5].sensor: the tag values budget of node 'rr-01' (5 per key) is used up:"
            " 'sensor' = 's5' would be one more",
        ),
    ],
)
def test_each_budget_names_itself_the_node_and_the_first_new_name_past_it(
    take: Intake, readings: list[dict[str, Any]], reason: str
) -> None:
    out = send(take, "rr-01", 1, *readings)

    assert isinstance(out, Rejected)
    assert reason in out.reasons


def test_a_message_past_several_budgets_gets_one_reason_for_each(take: Intake) -> None:
    readings = [reading(f"m{i % 3}", sensor=f"s{i}", k=str(i), **{f"k{i}": "v"}) for i in range(6)]

    out = send(take, "rr-01", 1, *readings)

    assert isinstance(out, Rejected)
    # The series budget first, then the others in the order the readings meet them.
    assert [r.split(": the ")[1].split(" budget")[0] for r in out.reasons] == [
        "series",
        "tag keys",
        "measurements",
        "tag values",
    ]


def test_budgets_come_from_the_manifest_by_kind_and_by_node() -> None:
    f = fleet(
        {"series": 100, "kind": {"station": {"series": 5000, "tag_values": 900}}},
        **{"rr-02": {"series": 7}},
    )

    assert f.budget("rr-01") == Budget(
        DEFAULT_BUDGET.measurements, DEFAULT_BUDGET.tag_keys, DEFAULT_BUDGET.tag_values, 100
    )
    assert f.budget("rr-02").series == 7
    assert (f.budget("st-01").series, f.budget("st-01").tag_values) == (5000, 900)
    assert f.budget("unlisted-01").series == 100
    assert fleet().budget("rr-01") == DEFAULT_BUDGET


def test_a_node_kind_of_its_own_gets_more(take: Intake) -> None:
    take = Intake(Topics("machikado"), fleet(SMALL, **{"rr-02": {"series": 6}}))
    six = [reading(stall=str(i % 3), floor=str(i // 3)) for i in range(6)]

    assert isinstance(send(take, "rr-02", 1, *six), Accepted)
    assert isinstance(send(take, "rr-01", 1, *six), Rejected)


def test_after_a_restart_the_budget_counts_what_the_store_already_holds() -> None:
    store = SqliteStore(":memory:")
    base = {"node": "rr-01", "trial": "t", "site": "s"}
    store.write(
        [Point("visit", {**base, "stall": str(i)}, {"n": 1}, 1) for i in range(4)]
        + [Point("link", {"node": "rr-01", "stream": STREAM}, {"seq": 1}, 1)]
    )
    take = Intake(Topics("machikado"), fleet(SMALL))

    assert take.usage.seed_from(store) == 4

    assert isinstance(send(take, "rr-01", 9, reading(stall="3")), Accepted)
    out = send(take, "rr-01", 10, reading(stall="new"))
    assert isinstance(out, Rejected)
    assert "the series budget of node 'rr-01' (4) is used up" in out.reasons[0]


def test_a_store_that_cannot_list_its_series_leaves_the_budgets_counting_from_now() -> None:
    usage = Usage()
    assert usage.seed_from(object()) == 0
    assert usage.of("rr-01").series == set()


# -- the line path decides as the full path does, with budgets on --------------------------

_tags = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["1", "2", "3", "4"]))
_readings = st.builds(
    lambda m, sensor, tags: reading(m, sensor, **tags),
    st.sampled_from(["visit", "air", "door"]),
    st.none() | st.sampled_from(["s1", "s2", "s3", "s4"]),
    _tags,
)
_messages = st.tuples(st.sampled_from(["rr-01", "rr-02"]), st.lists(_readings, min_size=1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_messages, min_size=1, max_size=12))
def test_the_line_path_admits_and_refuses_what_the_full_path_does(
    messages: list[tuple[str, list[dict[str, Any]]]],
) -> None:
    f = fleet({"measurements": 2, "tag_keys": 3, "tag_values": 3, "series": 6})
    line, full = (Intake(Topics("machikado"), f, line_path=p) for p in (True, False))
    for seq, (node, readings) in enumerate(messages, start=1):
        a, b = send(line, node, seq, *readings), send(full, node, seq, *readings)
        assert type(a) is type(b)
        if isinstance(a, Rejected):
            assert isinstance(b, Rejected)
            assert a.reasons == b.reasons
        else:
            assert isinstance(a, Accepted)
            assert isinstance(b, Accepted)
            assert a.lines == b.lines
    for node in ("rr-01", "rr-02"):
        assert line.usage.of(node).series == full.usage.of(node).series


def test_a_shape_seen_only_in_a_refused_message_is_not_learnt_by_the_line_path() -> None:
    take = Intake(Topics("machikado"), fleet(SMALL))
    # Four new series at once in a message that another budget refuses (five measurements).
    first = [reading(f"m{i}") for i in range(3)]
    assert isinstance(send(take, "rr-01", 1, *first), Rejected)

    # Had the line path learnt m0 from the refused message, m0 would now pass unbudgeted.
    assert isinstance(send(take, "rr-01", 2, reading("a"), reading("b")), Accepted)
    out = send(take, "rr-01", 3, reading("m0"))
    assert isinstance(out, Rejected)
    assert "'m0' would be one more" in out.reasons[0]


def test_time_is_not_counted_only_series() -> None:
    take = Intake(Topics("machikado"), fleet(SMALL))
    same = reading(stall="1")
    later = {**same, "at": (NOW - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    for seq in range(1, 20):
        assert isinstance(send(take, "rr-01", seq, same, later), Accepted)
    assert len(take.usage.of("rr-01").series) == 1


# -- the real collector, restarted, on the real influxd ---------------------------------------

#: Tag values the store's series list must give back exactly, or known series would count twice.
AWKWARD = ["a b,c=d", "back\\slash", "つくば 駅,西口", '"q"', "x=y"]


def _fresh(doc: dict[str, Any]) -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(seconds=1)
    return {**doc, "at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


def _publish(client: RecordingClient, seq: int, readings: list[dict[str, Any]]) -> None:
    doc = json.loads(envelope("bx-01", seq, [_fresh(r) for r in readings]))
    doc["sent_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert not client.publish("machikado/v1/bx-01/data", json.dumps(doc)).is_failure


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_restarted_collector_counts_the_series_influxdb_holds_against_the_budget(
    mosquitto: MosquittoServer, influxdb: InfluxServer, tmp_path: Path
) -> None:
    budget = {"series": len(AWKWARD), "tag_values": 100}
    fleet_file = write_fleet(tmp_path / "fleet.toml", ["bx-01"], budgets=budget)
    config = write_collector_config(
        tmp_path / "cloud",
        broker=mosquitto,
        store=influx_store(influxdb, "budgets"),
        manifest=fleet_file.path,
    )
    known = [reading("air", sensor="s 1", where=v) for v in AWKWARD]
    stored = "SELECT count(n) FROM air"

    def count() -> int:
        try:
            rows = influx_rows(influxdb, "budgets", stored)
        except ServiceError as exc:  # before the collector's first write makes the database
            if "database not found" in str(exc):
                return 0
            raise
        return int(rows[0]["count"]) if rows else 0

    with reaping() as children, RecordingClient(mosquitto) as client:
        first = CollectorProcess(config, broker=mosquitto).start()
        children.append(first)
        _publish(client, 1, known)
        wait_for("the first readings stored", lambda: count() == len(AWKWARD), 30)
        assert first.terminate() == 0, first.log_tail()

        again = CollectorProcess(config, broker=mosquitto).start()
        children.append(again)
        _publish(client, 2, [known[0], reading("air", sensor="s 1", where="new")])
        _publish(client, 3, known)
        wait_for("the known series stored again", lambda: count() == 2 * len(AWKWARD), 30)
        wait_for("the new series dead-lettered", lambda: bool(again.dead_letters()), 30)
        assert again.terminate() == 0, again.log_tail()

    [refused] = again.dead_letters()
    assert refused.seq == 2
    assert refused.reasons == (
        f"readings[1]: the series budget of node 'bx-01' ({len(AWKWARD)}) is used up:"
        " 'air' {'sensor': 's 1', 'where': 'new'} would be one more",
    )
