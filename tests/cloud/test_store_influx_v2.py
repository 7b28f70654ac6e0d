"""InfluxV2Store against a recording HTTP server: the exact requests, and how answers map."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest

from cloud.errors import PointsRejected, StoreUnavailable
from cloud.store.base import Point
from cloud.store.influx_v2 import InfluxV2Store
from tests.cloud.recording_http import Canned, RecordingHTTPServer
from tests.services import free_port

T = 1_764_140_400_000_000_000
POINTS = [
    Point("visit", {"node": "rr-01", "site": "駅 東口"}, {"duration_s": 3.5, "n": 2}, T),
    Point("visit", {"node": "rr-02"}, {"note": 'a "b"\\'}, T + 1),
]
BODY = (
    f"visit,node=rr-01,site=駅\\ 東口 duration_s=3.5,n=2i {T}\n"
    f'visit,node=rr-02 note="a \\"b\\"\\\\" {T + 1}\n'
).encode()


@pytest.fixture
def server() -> Iterator[RecordingHTTPServer]:
    with RecordingHTTPServer() as recording:
        yield recording


def _store(server: RecordingHTTPServer, *, gzip_body: bool = False) -> InfluxV2Store:
    return InfluxV2Store(
        server.url, token="s3cret", org="tsukuba", bucket="machikado", gzip_body=gzip_body
    )


def test_a_write_posts_line_protocol_to_api_v2_write_with_token_org_bucket_ns(
    server: RecordingHTTPServer,
) -> None:
    store = _store(server)
    store.write(POINTS)
    store.close()
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == "/api/v2/write"
    assert {k: request.param(k) for k in request.query} == {
        "org": "tsukuba",
        "bucket": "machikado",
        "precision": "ns",
    }
    assert request.headers["authorization"] == "Token s3cret"
    assert request.headers["content-type"].startswith("text/plain")
    assert "content-encoding" not in request.headers
    assert request.body == BODY


def test_a_gzip_write_says_so_and_carries_the_same_body(server: RecordingHTTPServer) -> None:
    store = _store(server, gzip_body=True)
    store.write(POINTS)
    store.close()
    (request,) = server.requests
    assert request.headers["content-encoding"] == "gzip"
    assert request.raw_body != request.body
    assert request.body == BODY


def test_a_400_is_a_rejection_with_the_servers_message(server: RecordingHTTPServer) -> None:
    message = 'partial write: field type conflict: input field "n" on measurement "visit"'
    server.answer(
        "/api/v2/write",
        Canned(
            400,
            json.dumps({"code": "invalid", "message": message}).encode(),
            {"Content-Type": "application/json"},
        ),
    )
    store = _store(server)
    with pytest.raises(PointsRejected) as caught:
        store.write(POINTS)
    assert caught.value.reasons == (message,)
    store.close()


@pytest.mark.parametrize(
    ("status", "says"),
    [(401, "refused the token"), (404, "not found"), (503, "answered 503"), (429, "answered 429")],
)
def test_other_answers_leave_the_points_to_be_retried(
    server: RecordingHTTPServer, status: int, says: str
) -> None:
    server.answer(
        "/api/v2/write",
        Canned(status, b'{"code":"x","message":"nope"}', {"Content-Type": "application/json"}),
    )
    store = _store(server)
    with pytest.raises(StoreUnavailable, match=says):
        store.write(POINTS)
    store.close()
    assert len(server.requests) == 1


def test_a_204_after_a_503_stores_the_same_body(server: RecordingHTTPServer) -> None:
    server.answer("/api/v2/write", Canned(503, b'{"message":"busy"}'), Canned(204))
    store = _store(server)
    with pytest.raises(StoreUnavailable):
        store.write(POINTS)
    store.write(POINTS)
    store.close()
    first, second = server.requests
    assert first.body == second.body == BODY


def test_nothing_listening_is_unavailable() -> None:
    store = InfluxV2Store(
        f"http://127.0.0.1:{free_port('127.0.0.1')}", token="t", org="o", bucket="b", timeout_s=2
    )
    with pytest.raises(StoreUnavailable):
        store.write(POINTS)
    with pytest.raises(StoreUnavailable):
        store.ping()
    store.close()


def test_reads_are_influxql_on_the_v1_compatible_query_endpoint(
    server: RecordingHTTPServer,
) -> None:
    server.answer(
        "/query",
        Canned(
            200,
            json.dumps(
                {
                    "results": [
                        {
                            "statement_id": 0,
                            "series": [
                                {
                                    "name": "visit",
                                    "tags": {"node": "rr-01"},
                                    "columns": ["time", "count_duration_s", "count_n"],
                                    "values": [[0, 4, 3]],
                                }
                            ],
                        }
                    ]
                }
            ).encode(),
            {"Content-Type": "application/json"},
        ),
    )
    store = _store(server)
    since = datetime(2026, 11, 26, tzinfo=UTC)
    assert store.count("visit", by="node", since=since) == {"rr-01": 4}
    store.close()
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == "/query"
    assert request.headers["authorization"] == "Token s3cret"
    form = {k: v for k, (v,) in parse_qs(request.body.decode()).items()}
    assert form["db"] == "machikado"
    assert form["epoch"] == "ns"
    assert form["q"] == (
        f'SELECT count(*) FROM "visit" WHERE time >= {int(since.timestamp()) * 10**9}'
        ' GROUP BY "node"'
    )


def test_ping_reports_the_servers_version(server: RecordingHTTPServer) -> None:
    server.answer("/ping", Canned(204, b"", {"X-Influxdb-Version": "v2.7.11"}))
    store = _store(server)
    assert store.ping() == "v2.7.11"
    store.close()
