"""InfluxV1Store against the real influxd 1.6.7, and a recording server for other answers."""

from __future__ import annotations

import base64
import gzip

import pytest

from cloud.errors import PointsRejected, StoreUnavailable
from cloud.store.base import Point
from cloud.store.influx_v1 import InfluxV1Store
from tests.cloud.recording_http import Canned, RecordingHTTPServer
from tests.services import InfluxServer, free_port

T = 1_764_140_400_000_000_000


def _visit(i: int, **fields: float | int | str | bool) -> Point:
    return Point("visit", {"node": f"rr-{i % 3:02d}"}, fields or {"duration_s": float(i)}, T + i)


def _rows(influx: InfluxServer, db: str, q: str) -> list[list[object]]:
    result = influx.query(q, db=db, epoch="ns")["results"][0]
    return [row for s in result.get("series", []) for row in s["values"]]


@pytest.mark.integration
def test_write_creates_the_database_and_stores_every_point(influxdb: InfluxServer) -> None:
    store = InfluxV1Store(influxdb.url, database="city")
    store.write([_visit(i) for i in range(10)])
    assert _rows(influxdb, "city", "SELECT count(duration_s) FROM visit") == [[0, 10]]
    store.close()


@pytest.mark.integration
def test_writing_the_same_points_again_stores_them_once(influxdb: InfluxServer) -> None:
    store = InfluxV1Store(influxdb.url, database="city")
    points = [_visit(i) for i in range(5)]
    store.write(points)
    store.write(points)
    store.write(points[2:])
    assert store.count("visit", by=None) == {"": 5}
    store.close()


@pytest.mark.integration
def test_a_point_written_again_overwrites_its_fields_and_keeps_the_others(
    influxdb: InfluxServer,
) -> None:
    store = InfluxV1Store(influxdb.url, database="city")
    store.write([_visit(1, duration_s=1.0, stall="a")])
    store.write([_visit(1, duration_s=2.0)])
    (row,) = store.latest("visit")
    assert row.fields == {"duration_s": 2.0, "stall": "a"}
    store.close()


@pytest.mark.integration
def test_a_field_type_conflict_is_rejected_with_influxds_reason_and_the_rest_is_stored(
    influxdb: InfluxServer,
) -> None:
    store = InfluxV1Store(influxdb.url, database="city")
    store.write([_visit(0, duration_s=1.5)])
    with pytest.raises(PointsRejected) as caught:
        store.write([_visit(1, duration_s=2.5), _visit(2, duration_s="long")])
    (reason,) = caught.value.reasons
    assert "partial write" in reason
    assert "field type conflict" in reason
    # influxd stored the good point of the batch: the caller isolates the bad one by writing
    # message by message, and the good ones are overwritten with themselves.
    assert store.count("visit", by=None) == {"": 2}
    store.close()


@pytest.mark.integration
def test_unstorable_values_are_rejected_before_anything_is_sent(influxdb: InfluxServer) -> None:
    store = InfluxV1Store(influxdb.url, database="city")
    with pytest.raises(PointsRejected) as caught:
        store.write([_visit(0), _visit(1, n=2**63), _visit(2, x=float("nan"))])
    assert len(caught.value.reasons) == 2
    assert "does not fit in int64" in caught.value.reasons[0]
    assert "not a finite number" in caught.value.reasons[1]
    assert store.count("visit", by=None) == {}
    store.close()


@pytest.mark.integration
def test_a_stopped_server_makes_writes_unavailable_until_it_is_back(
    influxdb: InfluxServer,
) -> None:
    store = InfluxV1Store(influxdb.url, database="city", timeout_s=5)
    store.write([_visit(0)])
    influxdb.stop()
    with pytest.raises(StoreUnavailable):
        store.write([_visit(1)])
    with pytest.raises(StoreUnavailable):
        store.ping()
    influxdb.start()
    store.write([_visit(1)])
    assert store.count("visit", by=None) == {"": 2}
    store.close()


def test_nothing_listening_is_unavailable_not_an_error_of_the_points() -> None:
    store = InfluxV1Store(f"http://127.0.0.1:{free_port('127.0.0.1')}", timeout_s=2)
    with pytest.raises(StoreUnavailable, match="unreachable"):
        store.write([_visit(0)])
    store.close()


@pytest.mark.integration
def test_a_dropped_database_is_created_again_on_the_next_write(influxdb: InfluxServer) -> None:
    store = InfluxV1Store(influxdb.url, database="city")
    store.write([_visit(0)])
    influxdb.query('DROP DATABASE "city"')
    store.write([_visit(1)])
    assert store.count("visit", by=None) == {"": 1}
    store.close()


@pytest.mark.integration
def test_gzip_bodies_and_a_retention_policy_are_accepted_by_influxd(
    influxdb: InfluxServer,
) -> None:
    influxdb.query('CREATE DATABASE "city"')
    influxdb.query('CREATE RETENTION POLICY "year" ON "city" DURATION 5200w REPLICATION 1')
    store = InfluxV1Store(influxdb.url, database="city", retention_policy="year", gzip_body=True)
    store.write([_visit(i) for i in range(3)])
    assert _rows(influxdb, "city", 'SELECT count(duration_s) FROM "year"."visit"') == [[0, 3]]
    assert store.count("visit", by=None) == {"": 3}
    store.close()


@pytest.mark.integration
def test_a_batch_of_5000_points_goes_in_one_request(influxdb: InfluxServer) -> None:
    store = InfluxV1Store(influxdb.url, database="city")
    points = [
        Point("visit", {"node": f"rr-{i % 20:02d}", "stall": str(i % 4)}, {"d": i * 0.5}, T + i)
        for i in range(5000)
    ]
    store.write(points)
    assert sum(store.count("visit", by="node").values()) == 5000
    store.close()


def test_requests_carry_basic_auth_and_the_ns_precision() -> None:
    with RecordingHTTPServer() as server:
        store = InfluxV1Store(
            server.url, database="city", retention_policy="rp", username="collector", password="pw"
        )
        store.write([_visit(0)])
        store.close()
    create, write = server.requests
    assert create.path == "/query"
    assert b"CREATE+DATABASE" in create.body
    assert write.method == "POST"
    assert write.path == "/write"
    assert {k: write.param(k) for k in write.query} == {"db": "city", "rp": "rp", "precision": "ns"}
    expected = base64.b64encode(b"collector:pw").decode()
    assert write.headers["authorization"] == f"Basic {expected}"
    assert write.body == f"visit,node=rr-00 duration_s=0.0 {T}\n".encode()


def test_a_gzip_body_is_the_same_line_protocol_compressed() -> None:
    with RecordingHTTPServer() as server:
        store = InfluxV1Store(server.url, gzip_body=True)
        store.write([_visit(0)])
        store.close()
    write = server.requests[-1]
    assert write.headers["content-encoding"] == "gzip"
    assert gzip.decompress(write.raw_body) == f"visit,node=rr-00 duration_s=0.0 {T}\n".encode()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, StoreUnavailable),
        (403, StoreUnavailable),
        (500, StoreUnavailable),
        (503, StoreUnavailable),
        (400, PointsRejected),
    ],
)
def test_write_answers_map_to_store_errors(status: int, error: type[Exception]) -> None:
    with RecordingHTTPServer() as server:
        server.answer("/write", Canned(status, b'{"error":"says the server"}'))
        store = InfluxV1Store(server.url)
        with pytest.raises(error, match="says the server"):
            store.write([_visit(0)])
        store.close()


def test_a_user_who_may_not_create_databases_still_writes() -> None:
    with RecordingHTTPServer() as server:
        server.answer("/query", Canned(403, b'{"error":"requires admin privilege"}'))
        store = InfluxV1Store(server.url, database="city", username="writer", password="pw")
        store.write([_visit(0)])
        store.write([_visit(1)])
        store.close()
    assert [r.path for r in server.requests] == ["/query", "/write", "/write"]


def test_values_holding_unicode_line_breaks_are_read_back(influxdb: InfluxServer) -> None:
    # JSON leaves U+0085 and U+2028 unescaped in strings; a reader that split influxd's chunked
    # answer with str.splitlines() cut such a string in two (found by hypothesis in CI).
    store = InfluxV1Store(influxdb.url, database="breaks")
    odd = "a\x85b\u2028c"
    store.write([Point("visit", {"node": "rr-01", "stall": odd}, {"note": odd}, 1)])
    assert [dict(r.fields) for r in store.latest("visit", by="stall")] == [{"note": odd}]
    assert ("visit", {"node": "rr-01", "stall": odd}) in list(store.node_series())
