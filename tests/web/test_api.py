"""The JSON API: tokens, answers that match the pages, and fuzzing from its own OpenAPI
document (schemathesis): bad input is a 4xx with a reason, never a 500."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from cloud.store.base import Point
from cloud.store.read import to_ns
from cloud.web.accounts import create_api_token, revoke_api_token
from tests.web.conftest import NOW, Web


def _token(web: Web, name: str = "partner-1") -> str:
    with web.db.session() as s:
        return create_api_token(s, name=name, actor="test")


def _fill(web: Web) -> None:
    tags = {"node": "rr-01", "trial": "restroom-health", "site": "tsukuba-stn-restroom"}
    web.store.write(
        [
            Point(
                "link",
                {"node": "rr-01", "stream": "s-aaaaaaaa"},
                {"seq": s, "latency_s": 0.1},
                to_ns(NOW - timedelta(minutes=10 - s)),
            )
            for s in (1, 2, 4)
        ]
        + [Point("help_call", tags, {"pressed": True}, to_ns(NOW - timedelta(minutes=3)))]
    )


def test_the_api_needs_a_live_token(web: Web) -> None:
    client = web.client()
    assert client.get("/api/v1/nodes").status_code == 401
    assert (
        client.get("/api/v1/nodes", headers={"Authorization": "Bearer mk_wrong"}).status_code == 401
    )
    token = _token(web)
    answer = client.get("/api/v1/nodes", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    with web.db.session() as s:
        revoke_api_token(s, "partner-1", actor="test")
    assert (
        client.get("/api/v1/nodes", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )
    # A browser session is not an API token.
    browser = web.login("tanaka")
    assert browser.get("/api/v1/nodes").status_code == 401


def test_the_api_answers_what_the_pages_show(web: Web) -> None:
    _fill(web)
    headers = {"Authorization": f"Bearer {_token(web)}"}
    client = web.client()
    nodes = {n["node"]: n for n in client.get("/api/v1/nodes", headers=headers).json()["nodes"]}
    page = {r["node"]: r for r in web.login("tanaka").get("/fleet.json").json()["rows"]}
    assert {k: v["state"] for k, v in nodes.items()} == {k: v["state"] for k, v in page.items()}
    done = client.get("/api/v1/completeness?month=2026-12&node=rr-01", headers=headers).json()
    assert [(g["first_seq"], g["last_seq"]) for g in done["gaps"]] == [(3, 3)]
    figures = client.get(
        "/api/v1/trials/restroom-health/figures?month=2026-12", headers=headers
    ).json()
    calls = next(f for f in figures["figures"] if f["name"] == "help_calls_by_hour")
    assert dict(calls["bars"])[9] == 1.0  # 09:57 JST
    readings = client.get(
        "/api/v1/readings",
        params={"measurement": "help_call", "since": "2026-12-05T00:00:00+00:00", "node": "rr-01"},
        headers=headers,
    ).json()
    assert [r["fields"] for r in readings["readings"]] == [{"pressed": True}]


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ({"measurement": "help_call", "since": "2026-12-05T00:00:00"}, "timezone"),
        ({"measurement": "help call", "since": "2026-12-05T00:00:00Z"}, "pattern"),
        ({"measurement": "x", "since": "2026-10-01T00:00:00Z"}, "at most 31 days"),
        ({"measurement": "x", "since": "2026-12-05T00:00:00Z", "limit": "0"}, "greater"),
        ({"measurement": "x", "since": "2026-12-05T00:00:00Z", "node": "A B"}, "pattern"),
        # Found by the fuzzer: beyond what a nanosecond time can hold (a 500 before).
        (
            {"measurement": "x", "since": "2263-01-01T00:00:00Z", "until": "2263-01-02T00:00:00Z"},
            "between 2000 and 2100",
        ),
    ],
)
def test_bad_api_input_is_a_4xx_naming_the_problem(
    web: Web, query: dict[str, str], why: str
) -> None:
    headers = {"Authorization": f"Bearer {_token(web)}"}
    answer = web.client().get("/api/v1/readings", params=query, headers=headers)
    assert answer.status_code == 422
    assert why in str(answer.json()["detail"])


def test_the_api_never_fails_with_a_server_error(web: Web) -> None:
    """Every operation of the OpenAPI document, with generated (also invalid) input."""
    _fill(web)
    headers = {"Authorization": f"Bearer {_token(web, 'fuzzer')}"}
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", web.app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {op.path for op in operations} == {
        "/api/v1/nodes",
        "/api/v1/trials",
        "/api/v1/trials/{trial}/figures",
        "/api/v1/completeness",
        "/api/v1/readings",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            # Every check but "a request the schema allows is accepted": the API also refuses
            # what OpenAPI cannot say (a range over 31 days), with a 422 and the reason.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        call()
