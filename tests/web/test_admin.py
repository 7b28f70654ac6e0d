"""Admin pages in process: accounts, API tokens, settings and the audit log, each change
audited; and who may see what."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from httpx2 import Response

from cloud.store.base import Point
from cloud.store.read import to_ns
from tests.web.conftest import NOW, PASSWORD, Web, csrf_of


def _post(client: TestClient, path: str, **data: str) -> Response:
    page = client.get("/admin")
    return client.post(path, data={"csrf": csrf_of(page.text), **data}, follow_redirects=False)


def test_an_admin_adds_an_account_that_can_then_log_in(web: Web) -> None:
    admin = web.login("sato", "admin")
    refused = _post(admin, "/admin/users", username="suzuki", role="staff", password="short")
    assert refused.status_code == 422
    assert "at least 12" in refused.text
    added = _post(
        admin,
        "/admin/users",
        username="suzuki",
        role="staff",
        password=PASSWORD,
        display_name="Suzuki Hanako",
    )
    assert added.status_code == 303
    client = web.client()
    page = client.get("/login")
    answer = client.post(
        "/login",
        data={"username": "suzuki", "password": PASSWORD, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert "Suzuki Hanako" in client.get("/").text


def test_disabling_an_account_ends_its_sessions_at_once(web: Web) -> None:
    staff = web.login("tanaka", "staff")
    assert staff.get("/", follow_redirects=False).status_code == 200
    admin = web.login("sato", "admin")
    assert _post(admin, "/admin/users/tanaka", action="disable").status_code == 303
    assert staff.get("/", follow_redirects=False).status_code == 303
    assert _post(admin, "/admin/users/sato", action="disable").status_code == 422  # not oneself


def test_a_token_made_in_the_page_is_shown_once_and_works(web: Web) -> None:
    admin = web.login("sato", "admin")
    made = _post(admin, "/admin/tokens", name="partner-2")
    token = re.search(r'<code class="token">(mk_[^<]+)</code>', made.text)
    assert token is not None
    assert made.headers["cache-control"] == "no-store"
    api = web.client().get("/api/v1/nodes", headers={"Authorization": f"Bearer {token[1]}"})
    assert api.status_code == 200
    assert token[1] not in admin.get("/admin").text  # never again
    assert _post(admin, "/admin/tokens/partner-2/revoke").status_code == 303
    api = web.client().get("/api/v1/nodes", headers={"Authorization": f"Bearer {token[1]}"})
    assert api.status_code == 401


def test_a_settings_change_moves_the_fleet_states_and_is_audited(web: Web) -> None:
    at = to_ns(NOW - timedelta(minutes=10))
    web.store.write([Point("link", {"node": "rr-01", "stream": "s-aaaaaaaa"}, {"seq": 1}, at)])
    admin = web.login("sato", "admin")
    rows = {r["node"]: r["state"] for r in admin.get("/fleet.json").json()["rows"]}
    assert rows["rr-01"] == "stale"  # 10 minutes of 60 s intervals
    bad = _post(
        admin, "/admin/settings", interval_restroom="soon", stale_after="3", offline_after="12"
    )
    assert bad.status_code == 422
    assert "not a number" in bad.text
    assert (
        _post(
            admin, "/admin/settings", interval_restroom="600", stale_after="3", offline_after="12"
        ).status_code
        == 303
    )
    rows = {r["node"]: r["state"] for r in admin.get("/fleet.json").json()["rows"]}
    assert rows["rr-01"] == "online"
    log = admin.get("/admin/audit").text
    assert "settings_changed" in log


def test_auditors_read_the_audit_log_and_staff_do_not(web: Web) -> None:
    auditor = web.login("kato", "auditor")
    assert auditor.get("/admin/audit").status_code == 200
    assert auditor.get("/admin").status_code == 403
    export = auditor.get("/admin/audit.csv")
    assert export.status_code == 200
    assert "kato" in export.text
    staff = web.login("tanaka", "staff")
    assert staff.get("/admin/audit").status_code == 403
    assert staff.get("/admin/audit.json").status_code == 403
