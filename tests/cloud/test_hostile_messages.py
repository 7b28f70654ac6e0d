"""Hostile and malformed messages between valid ones: the collector keeps going and loses nothing.

Hypothesis makes batches of messages, each published to the real Mosquitto where one real
collector process runs: valid envelopes with exact, awkward values (Japanese text, line-protocol
metacharacters and backslashes in tags and strings, integers at the ends of int64, any finite
float) shuffled among broken ones, one of every kind the issue lists in each batch (bad JSON,
wrong types, oversized, control characters, metacharacters in keys, far-future timestamps, an
unknown node, a spoofed topic, a topic that is no node's; and a tag value ending in a backslash,
which the contract refuses since InfluxDB 1.x cannot store it). After each batch: the collector
is alive, every bad message is in the dead-letter store with a reason naming its problem, and
every valid reading is in the store exactly as sent. One run stores into SQLite, one into the
real influxd 1.6.7 through line protocol.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, cast

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cloud.deadletter import DeadLetter
from cloud.store import open_store
from cloud.store.settings import StoreSettings
from protocol import Envelope, Reading
from protocol.limits import INT64_MAX, INT64_MIN, RESERVED_TAGS
from tests.cloud.harness import (
    CollectorProcess,
    Fleet,
    influx_rows,
    influx_store,
    quote_ident,
    reaping,
    sqlite_store,
    write_collector_config,
    write_fleet,
)
from tests.integration.nodes import wait_for
from tests.services import InfluxServer, MosquittoServer, RecordingClient, ServiceError

pytestmark = pytest.mark.integration

NODES = ["hx-01", "hx-02", "hx-03"]
UNKNOWN_NODE = "hx-99"
PREFIX = "machikado/v1"
DB = "machikado"
#: Every valid reading carries a unique ``rid`` tag: its own series, found again by it.
RID = "rid"
MEASUREMENTS = ("visit", "air", "synthetic")
#: Budgets no run of this test can reach.
NO_BUDGETS = {"measurements": 10**6, "tag_keys": 10**6, "tag_values": 10**6, "series": 10**6}
#: Examples per store; each is one batch of messages through the live collector.
EXAMPLES = 60
#: Seconds one batch may take to show up in the stores.
SETTLE_S = 30.0

_rids = itertools.count(1)

# -- valid values -------------------------------------------------------------------------------

ALPHABET = (
    "abcXYZ019 ,=\"'\\{}[]#:;_-./"  # ASCII, line-protocol and InfluxQL metacharacters
    "街角つくば駅前公衆トイレ東西温度ｶﾅ"  # Japanese, half-width kana too
    "äé€🚲"
)
SPECIAL_TAGS = ("a b", "k=v,x=y", '"quoted"', "つくば 駅,西口", "back\\slash", "\\ first")

# The contract refuses a tag value (or sensor) ending in a backslash, which InfluxDB 1.x cannot
# store: such a value is one of the bad kinds below.
tag_values = st.one_of(
    st.text(alphabet=ALPHABET, min_size=1, max_size=40), st.sampled_from(SPECIAL_TAGS)
).filter(lambda v: not v.endswith("\\"))
tag_keys = st.from_regex(r"t[A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda k: k not in RESERVED_TAGS
)
string_values = st.one_of(
    st.sampled_from(["", "ends\\", '"', "a,b=c d", "日本語テキスト"]),
    st.text(alphabet=ALPHABET, max_size=256),
)
# Field keys carry their type, so one key never holds two types (InfluxDB refuses that).
field_strategies: dict[str, st.SearchStrategy[Any]] = {
    "i": st.one_of(
        st.sampled_from([INT64_MIN, INT64_MAX, 0, -1, 2**53 + 1]),
        st.integers(INT64_MIN, INT64_MAX),
    ),
    "f": st.one_of(
        st.sampled_from([0.1, -0.0, 1e300, 5e-324, 2.0**53 + 2, 1 / 3]),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    "s": string_values,
    "b": st.booleans(),
}


@st.composite
def field_sets(draw: st.DrawFn) -> dict[str, Any]:
    kinds = draw(st.lists(st.sampled_from(sorted(field_strategies)), min_size=1, max_size=5))
    names = draw(st.lists(st.from_regex(r"[a-z0-9]{1,5}", fullmatch=True), min_size=len(kinds)))
    return {f"{k}_{n}": draw(field_strategies[k]) for k, n in zip(kinds, names, strict=False)}


@dataclass(frozen=True)
class ReadingSpec:
    """A valid reading to be, its time as an age so it is fresh whenever it is published."""

    m: str
    age_us: int
    sensor: str | None
    tags: dict[str, str]
    fields: dict[str, Any]
    rid: str = field(default_factory=lambda: f"r{next(_rids)}-{uuid.uuid4().hex[:8]}")

    def reading(self, now: datetime) -> Reading:
        return Reading(
            m=self.m,
            at=now - timedelta(microseconds=self.age_us),
            sensor=self.sensor,
            tags={**self.tags, RID: self.rid},
            fields=self.fields,
        )


reading_specs = st.builds(
    ReadingSpec,
    m=st.sampled_from(MEASUREMENTS),
    age_us=st.integers(0, 30 * 86_400 * 10**6),
    sensor=st.one_of(
        st.none(),
        st.text(alphabet=ALPHABET, min_size=1, max_size=64).filter(lambda v: not v.endswith("\\")),
    ),
    tags=st.dictionaries(tag_keys, tag_values, max_size=3),
    fields=field_sets(),
)


# -- messages -----------------------------------------------------------------------------------


@dataclass
class Message:
    """One message to publish, and what should become of it."""

    kind: str
    topic: str
    payload: bytes
    #: For a bad message: each reason of its record must hold one of these (lower case).
    reason_any: tuple[str, ...] = ()
    #: For a valid one: the readings it carries.
    readings: list[Reading] = field(default_factory=list)
    node: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


def data_topic(node: str) -> str:
    return f"{PREFIX}/{node}/data"


def envelope(node: str, specs: list[ReadingSpec], now: datetime) -> dict[str, Any]:
    """A valid envelope as a JSON-ready dict: a fresh stream, so no record merges with another."""
    env = Envelope(
        node=node,
        stream=uuid.uuid4().hex,
        seq=1,
        sent_at=now,
        readings=[s.reading(now) for s in specs],
    )
    return cast(dict[str, Any], json.loads(env.model_dump_json()))


def encode(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


@dataclass(frozen=True)
class Render:
    """A message to be made at publish time (timestamps fresh); its repr says what it is."""

    what: str
    make: Callable[[datetime], Message] = field(repr=False)

    def __call__(self, now: datetime) -> Message:
        return self.make(now)


@st.composite
def valid_messages(draw: st.DrawFn) -> Render:
    node = draw(st.sampled_from(NODES))
    specs = draw(st.lists(reading_specs, min_size=1, max_size=4))

    def render(now: datetime) -> Message:
        doc = envelope(node, specs, now)
        readings = [Reading.model_validate(r) for r in doc["readings"]]
        return Message("valid", data_topic(node), encode(doc), readings=readings, node=node)

    return Render(f"valid {node} {specs!r}", render)


BAD_KINDS = (
    "bad_json",
    "wrong_type",
    "oversized",
    "control_char",
    "metachar_key",
    "far_future",
    "unknown_node",
    "spoofed_topic",
    "bad_topic",
    "bad_state",
    "tag_ends_in_backslash",
)


@st.composite
def bad_messages(draw: st.DrawFn, kinds: st.SearchStrategy[str]) -> Render:
    """One broken message of a kind drawn from ``kinds``."""
    kind = draw(kinds)
    node = draw(st.sampled_from(NODES))
    specs = draw(st.lists(reading_specs, min_size=1, max_size=2))
    cut = draw(st.floats(0.0, 0.999))
    wrong = draw(
        st.sampled_from(
            [
                ("seq", "seventeen", "seq"),
                ("seq", [1], "seq"),
                ("seq", 0, "seq"),
                ("v", 2, "v:"),
                ("sent_at", "yesterday", "sent_at"),
                ("readings", {"m": "visit"}, "readings"),
                ("readings", [], "readings"),
                ("field", [1, 2], "fields"),
                ("field", None, "fields"),
                ("field", {"x": 1}, "fields"),
                ("field", 2**63, "fields"),
                ("tag", 5, "tags"),
                ("at", True, ".at"),
            ]
        )
    )
    control = draw(st.sampled_from(["\x00", "\x07", "\n", "\x1b", "\x7f", "\x85"]))
    where = draw(st.sampled_from(["tag", "field", "sensor"]))
    bad_key = draw(st.sampled_from(["visit,x=1", "vi sit", 'v"q', "a=b", "温度", "1abc", ""]))
    key_at = draw(st.sampled_from(["m", "tag", "field"]))
    ahead = draw(st.integers(10 * 60, 200 * 365 * 86_400))
    spoof_as = draw(st.sampled_from([n for n in NODES if n != node]))

    def render(now: datetime) -> Message:
        doc = envelope(node, specs, now)
        reading = doc["readings"][0]
        topic = data_topic(node)
        if kind == "bad_json":
            raw = encode(doc)
            return Message(kind, topic, raw[: max(1, int(len(raw) * cut))], ("invalid json",))
        if kind == "wrong_type":
            what, value, named = wrong
            if what == "field":
                reading["fields"]["i_bad"] = value
            elif what == "tag":
                reading["tags"]["tbad"] = value
            elif what == "at":
                reading["at"] = value
            else:
                doc[what] = value
            return Message(kind, topic, encode(doc), (named,))
        if kind == "oversized":
            raw = encode(doc)
            padded = raw[:1] + b" " * (256 * 1024) + raw[1:]
            return Message(kind, topic, padded, ("bytes, more than",))
        if kind == "control_char":
            if where == "tag":
                reading["tags"]["tctl"] = f"a{control}b"
            elif where == "field":
                reading["fields"]["s_ctl"] = f"a{control}b"
            else:
                reading["sensor"] = f"s{control}"
            return Message(kind, topic, encode(doc), ("control character",))
        if kind == "metachar_key":
            if key_at == "m":
                reading["m"] = bad_key
            elif key_at == "tag":
                reading["tags"][bad_key] = "x"
            else:
                reading["fields"][bad_key] = 1
            return Message(kind, topic, encode(doc), ("should match pattern",))
        if kind == "far_future":
            future = now + timedelta(seconds=ahead)
            reading["at"] = future.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            return Message(kind, topic, encode(doc), ("ahead of the receiver's clock",))
        if kind == "unknown_node":
            doc["node"] = UNKNOWN_NODE
            return Message(kind, data_topic(UNKNOWN_NODE), encode(doc), ("unknown node",))
        if kind == "spoofed_topic":
            return Message(kind, data_topic(spoof_as), encode(doc), ("topic says",))
        if kind == "bad_topic":
            upper = node.upper().replace("-", "_")
            return Message(kind, data_topic(upper), encode(doc), ("must match",))
        if kind == "tag_ends_in_backslash":
            if where == "sensor":
                reading["sensor"] = "stall\\"
            else:
                reading["tags"]["tback"] = "C:\\temp\\"
            return Message(kind, topic, encode(doc), ("ends with a backslash",))
        assert kind == "bad_state"
        state = f"maybe-{uuid.uuid4().hex[:6]}".encode()
        return Message(kind, f"{PREFIX}/{node}/state", state, ("neither 'online' nor 'offline'",))

    details = {
        "bad_json": cut,
        "wrong_type": wrong,
        "control_char": (where, control),
        "metachar_key": (key_at, bad_key),
        "far_future": ahead,
        "spoofed_topic": spoof_as,
    }
    return Render(f"{kind} {node} {details.get(kind, '')!r} {specs!r}", render)


@st.composite
def batches(draw: st.DrawFn) -> list[Render]:
    """A shuffled batch: one bad message of every kind, a few more, and valid ones between."""
    every_kind = [draw(bad_messages(st.just(kind))) for kind in BAD_KINDS]
    more = draw(st.lists(bad_messages(st.sampled_from(BAD_KINDS)), max_size=3))
    valid = draw(st.lists(valid_messages(), min_size=1, max_size=6))
    return list(draw(st.permutations([*every_kind, *more, *valid])))


# -- reading the store back ---------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    time_ns: int
    tags: dict[str, str]
    fields: dict[str, Any]


class StoredReadings(Protocol):
    def by_rid(self, measurement: str) -> dict[str, list[Stored]]: ...

    def close(self) -> None: ...


class SqliteReadings:
    """Reads points back through the SQLite store's own read side."""

    def __init__(self, path: Path) -> None:
        self.store = open_store(StoreSettings(kind="sqlite", path=path))

    def by_rid(self, measurement: str) -> dict[str, list[Stored]]:
        return {
            row.key: [Stored(row.time_ns, dict(row.tags), dict(row.fields))]
            for row in self.store.latest(measurement, by=RID)
        }

    def close(self) -> None:
        self.store.close()


class InfluxReadings:
    """Reads points back from influxd with InfluxQL, tags and fields apart (GROUP BY *)."""

    def __init__(self, influx: InfluxServer) -> None:
        self.influx = influx

    def by_rid(self, measurement: str) -> dict[str, list[Stored]]:
        out: dict[str, list[Stored]] = {}
        try:
            result = self.influx.query(
                f"SELECT * FROM {quote_ident(measurement)} GROUP BY *", db=DB, epoch="ns"
            )
        except ServiceError as exc:
            if "database not found" in str(exc):
                return out  # the collector has not written yet
            raise
        for series in result["results"][0].get("series", []):
            tags = {k: v for k, v in series.get("tags", {}).items() if v != ""}
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                time_ns = row.pop("time")
                fields = {k: v for k, v in row.items() if v is not None}
                out.setdefault(tags.get(RID, ""), []).append(Stored(time_ns, tags, fields))
        return out

    def close(self) -> None:
        """Nothing held: each query is its own request."""

    def field_types(self, measurement: str) -> dict[str, str]:
        rows = influx_rows(self.influx, DB, f"SHOW FIELD KEYS FROM {quote_ident(measurement)}")
        return {r["fieldKey"]: r["fieldType"] for r in rows}


# -- checks -------------------------------------------------------------------------------------


def same_value(sent: Any, got: Any) -> bool:
    """Equal, and of the same kind: a bool stays a bool, an int an int, a float a float."""
    if isinstance(sent, bool) or isinstance(got, bool):
        return type(sent) is type(got) and sent == got
    if isinstance(sent, float):
        # JSON from InfluxDB writes an integral float without a point; the type is checked
        # through SHOW FIELD KEYS instead.
        return isinstance(got, int | float) and float(got) == sent and math.isfinite(got)
    return type(sent) is type(got) and sent == got


def expected_tags(reading: Reading, node: str, fleet: Fleet) -> dict[str, str]:
    trial, site = fleet.assignments[node]
    tags = {"node": node, "trial": trial, "site": site, **reading.tags}
    if reading.sensor is not None:
        tags["sensor"] = reading.sensor
    return tags


def time_ns(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def dead_letters(collector: CollectorProcess) -> dict[tuple[str, str], DeadLetter]:
    """Dead letters by topic and payload SHA-256."""
    return {(d.topic, d.payload_sha256): d for d in collector.dead_letters()}


def not_landed(
    messages: list[Message], collector: CollectorProcess, store: StoredReadings
) -> list[str]:
    """What has not reached its store yet: bad messages not dead-lettered, readings not stored."""
    collector.assert_alive()
    dead = dead_letters(collector)
    missing = [
        f"{m.kind} on {m.topic} not dead-lettered"
        for m in messages
        if m.kind != "valid" and (m.topic, m.sha256) not in dead
    ]
    wanted: dict[str, set[str]] = {}
    for m in messages:
        for r in m.readings:
            wanted.setdefault(r.m, set()).add(r.tags[RID])
    for measurement, rids in wanted.items():
        absent = rids - set(store.by_rid(measurement))
        missing += [f"reading {rid} ({measurement}) not stored" for rid in sorted(absent)]
    return missing


def wait_landed(
    messages: list[Message], collector: CollectorProcess, store: StoredReadings
) -> None:
    try:
        wait_for(
            f"{len(messages)} messages to reach the stores",
            lambda: not not_landed(messages, collector, store),
            SETTLE_S,
        )
    except AssertionError:
        dead = dead_letters(collector)
        stray = [
            f"{m.kind} dead-lettered: {dead[(m.topic, m.sha256)].reasons}"
            for m in messages
            if m.kind == "valid" and (m.topic, m.sha256) in dead
        ]
        raise AssertionError(
            f"not there after {SETTLE_S} s: {not_landed(messages, collector, store)}; {stray}\n"
            f"--- collector log ---\n{collector.log_tail(15)}"
        ) from None


def check_batch(
    messages: list[Message], collector: CollectorProcess, store: StoredReadings, fleet: Fleet
) -> None:
    dead = dead_letters(collector)
    for m in messages:
        key = (m.topic, m.sha256)
        if m.kind == "valid":
            assert key not in dead, f"a valid message was dead-lettered: {dead[key]}"
            continue
        record = dead[key]
        assert record.payload_len == len(m.payload)
        assert record.payload == m.payload[: len(record.payload)]
        assert record.reasons, f"{m.kind}: a dead letter without a reason"
        assert any(any(s in r.lower() for s in m.reason_any) for r in record.reasons), (
            f"{m.kind}: no reason names the problem ({m.reason_any}): {record.reasons}"
        )
    for m in messages:
        for reading in m.readings:
            rid = reading.tags[RID]
            found = store.by_rid(reading.m).get(rid, [])
            assert len(found) == 1, f"reading {rid} stored {len(found)} times"
            got = found[0]
            assert got.time_ns == time_ns(reading.at), rid
            assert got.tags == expected_tags(reading, m.node, fleet), rid
            assert got.fields.keys() == reading.fields.keys(), rid
            for name, sent in reading.fields.items():
                assert same_value(sent, got.fields[name]), (
                    f"{rid} field {name}: sent {sent!r}, stored {got.fields[name]!r}"
                )


# -- the test -----------------------------------------------------------------------------------


def send_batches(
    client: RecordingClient, collector: CollectorProcess, store: StoredReadings, fleet: Fleet
) -> Counter[str]:
    """Publish Hypothesis's batches, check each; return how many of each kind went through."""
    seen: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
        # Shrinking would replay failing batches against live processes, each waiting out its
        # timeout; the failing batch is printed whole instead (Render says what each is).
        phases=[Phase.explicit, Phase.generate],
    )
    @given(batch=batches())
    def one_batch(batch: list[Render]) -> None:
        now = datetime.now(UTC)
        messages = [render(now) for render in batch]
        for m in messages:
            client.publish(m.topic, m.payload, qos=1)
        wait_landed(messages, collector, store)
        check_batch(messages, collector, store, fleet)
        seen.update(m.kind for m in messages)
        seen["readings"] += sum(len(m.readings) for m in messages)

    one_batch()
    return seen


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["sqlite", "influx_v1"])
def test_hostile_messages_are_dead_lettered_and_valid_ones_stored_exactly(
    kind: str, mosquitto: MosquittoServer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Every valid reading is a series of its own (its rid) with tag keys drawn at random:
    # budgets out of the way here (tests/cloud/test_budget.py pins them).
    fleet = write_fleet(tmp_path / "fleet.toml", NODES, budgets=NO_BUDGETS)
    influx: InfluxServer | None = None
    if kind == "sqlite":
        store_section = sqlite_store(tmp_path / "store.sqlite")
    else:
        influx = cast(InfluxServer, request.getfixturevalue("influxdb"))
        store_section = influx_store(influx, DB)
    config = write_collector_config(
        tmp_path / "cloud",
        broker=mosquitto,
        store=store_section,
        manifest=fleet.path,
        max_delay_ms=50,
    )
    collector = CollectorProcess(config, broker=mosquitto)
    with reaping() as children:
        children.append(collector.start())
        store: StoredReadings = (
            SqliteReadings(tmp_path / "store.sqlite") if influx is None else InfluxReadings(influx)
        )
        try:
            with RecordingClient(mosquitto) as client:
                seen = send_batches(client, collector, store, fleet)
        finally:
            store.close()
        collector.assert_alive()
        assert collector.terminate() == 0, collector.log_tail()

    assert set(BAD_KINDS) <= set(seen), f"kinds never sent: {set(BAD_KINDS) - set(seen)}"
    assert seen["readings"] >= EXAMPLES, seen
    print(f"hostile messages through the {kind} store:", dict(seen))
    if influx is not None:
        readings = InfluxReadings(influx)
        for m in MEASUREMENTS:
            types = readings.field_types(m)
            wrong = {k: t for k, t in types.items() if not _type_fits(k, t)}
            assert not wrong, f"{m}: fields stored with the wrong InfluxDB type: {wrong}"


def _type_fits(key: str, influx_type: str) -> bool:
    wanted = {"i": "integer", "f": "float", "s": "string", "b": "boolean"}
    return wanted.get(key.split("_", 1)[0]) == influx_type
