"""The staff web app in process (an ASGI client): logins, roles, CSRF, the fleet page and its
exports, and pages that say what is wrong instead of failing."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from cloud.errors import StoreUnavailable
from cloud.store.base import FieldValue, Point
from cloud.store.read import to_ns
from tests.web.conftest import MANIFEST, NOW, PASSWORD, Web, csrf_of, fleet_points


def _link(node: str, minutes_ago: float, seq: int = 1) -> Point:
    at = NOW - timedelta(minutes=minutes_ago)
    return Point("link", {"node": node, "stream": "s-aaaaaaaa"}, {"seq": seq}, to_ns(at))


def test_a_page_asks_for_a_login_and_comes_back_after_it(web: Web) -> None:
    client = web.client()
    answer = client.get("/fleet.json?days=7", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/fleet.json?days=7"
    web.add_user("tanaka", "staff")
    page = client.get("/login?next=/fleet.json")
    answer = client.post(
        "/login",
        data={
            "username": "tanaka",
            "password": PASSWORD,
            "csrf": csrf_of(page.text),
            "next": "/fleet.json",
        },
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/fleet.json"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert client.get("/fleet.json").status_code == 200


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(web: Web) -> None:
    web.add_user("tanaka", "staff")
    client = web.client()
    page = client.get("/login")
    answer = client.post(
        "/login", data={"username": "tanaka", "password": "nope", "csrf": csrf_of(page.text)}
    )
    assert answer.status_code == 401
    assert "The username or password is not right." in answer.text
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_post_without_the_csrf_token_is_refused(web: Web) -> None:
    web.add_user("tanaka", "staff")
    client = web.client()
    client.get("/login")
    answer = client.post("/login", data={"username": "tanaka", "password": PASSWORD})
    assert answer.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 303  # not logged in
    logged_in = web.login("suzuki")
    assert logged_in.post("/logout", data={"csrf": "forged"}).status_code == 403
    assert logged_in.get("/", follow_redirects=False).status_code == 200  # still logged in
    page = logged_in.get("/")
    out = logged_in.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303
    assert logged_in.get("/", follow_redirects=False).status_code == 303


def test_a_redirect_after_login_stays_on_this_site(web: Web) -> None:
    web.add_user("tanaka", "staff")
    client = web.client()
    page = client.get("/login")
    answer = client.post(
        "/login",
        data={
            "username": "tanaka",
            "password": PASSWORD,
            "csrf": csrf_of(page.text),
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/"


def test_staff_cannot_reach_the_admin_pages_and_an_admin_can(web: Web) -> None:
    staff = web.login("tanaka", "staff")
    assert staff.get("/admin").status_code == 403
    assert "/admin" not in staff.get("/").text
    admin = web.login("sato", "admin")
    page = admin.get("/admin")
    assert page.status_code == 200
    assert "tanaka" in page.text  # the accounts
    assert "login" in admin.get("/admin/audit").text


def test_the_fleet_page_tells_each_nodes_state_from_its_data(web: Web) -> None:
    web.store.write(
        [
            _link("rr-01", 1),  # within 3 minutes: online
            _link("rr-02", 10),  # within 12: stale
            _link("rr-03", 120),  # offline
            _link("zz-99", 1),  # not in the manifest: shown, marked
            # Connected ("online" in its state) but no data: not online.
            Point("fleet_state", {"node": "mv-01"}, {"online": True}, to_ns(NOW)),
            Point("fleet_state", {"node": "rr-01"}, {"software": "0.1.0"}, to_ns(NOW)),
        ]
    )
    client = web.login("tanaka")
    rows = {r["node"]: r for r in client.get("/fleet.json").json()["rows"]}
    assert rows["rr-01"]["state"] == "online"
    assert rows["rr-01"]["software"] == "0.1.0"
    assert rows["rr-02"]["state"] == "stale"
    assert rows["rr-03"]["state"] == "offline"
    assert rows["mv-01"]["state"] == "never"
    assert rows["zz-99"]["state"] == "online"
    page = client.get("/")
    assert "not in the manifest" in page.text
    assert 'datetime="2026-12-05T09:59:00+09:00"' in page.text  # rr-01, shown in JST
    web.clock.advance(minutes=5)
    rows = {r["node"]: r for r in client.get("/fleet.json").json()["rows"]}
    assert rows["rr-01"]["state"] == "stale"


def test_fleet_exports_reparse_with_the_same_values_as_the_json(web: Web) -> None:
    web.store.write([_link("rr-01", 1), _link("rr-02", 30)])
    client = web.login("tanaka", language="ja")
    rows = client.get("/fleet.json").json()["rows"]
    excel = client.get("/fleet.excel.csv")
    plain = client.get("/fleet.csv")
    assert excel.content.startswith(b"\xef\xbb\xbf")
    assert not plain.content.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in plain.content
    assert b"sep=" not in excel.content
    assert 'filename="fleet-excel.csv"' in excel.headers["content-disposition"]
    for body in (excel.content.decode("utf-8-sig"), plain.content.decode("utf-8")):
        parsed = list(csv.reader(io.StringIO(body)))
        assert len(parsed) == len(rows) + 1
        by_node = {line[0]: line for line in parsed[1:]}
        for row in rows:
            line = by_node[row["node"]]
            assert line[4] == row["state"]
            assert line[5] == (row["last_seen"] or "")
    admin = web.login("sato", "admin")
    assert "fleet.excel.csv" in admin.get("/admin/audit").text  # the export is audited


class DownStore:
    """A store that cannot be reached."""

    def __getattr__(self, name: str) -> Callable[..., object]:
        def fail(*_a: object, **_k: object) -> object:
            raise StoreUnavailable("influxdb http://127.0.0.1:9 is not answering")

        return fail


def test_a_store_that_is_down_gives_a_page_that_says_so(web: Web) -> None:
    client = web.login("tanaka")
    web.app.state.web.store = DownStore()
    page = client.get("/")
    assert page.status_code == 503
    assert "The telemetry store cannot be reached" in page.text
    assert "not answering" in page.text
    api = client.get("/fleet.json")
    assert api.status_code == 503


def test_an_empty_store_shows_every_node_without_data(web: Web) -> None:
    client = web.login("tanaka")
    page = client.get("/")
    assert page.status_code == 200
    assert page.text.count("no data yet") >= 10


def test_an_unreadable_manifest_is_a_banner_not_a_failure(
    make_web: Callable[..., Web], tmp_path: Path
) -> None:
    bad = tmp_path / "fleet.toml"
    bad.write_text("[[nodes]]\nid = 'Bad Id'\n", encoding="utf-8")
    web = make_web(manifest=bad)
    web.store.write([_link("rr-01", 1)])
    client = web.login("tanaka")
    page = client.get("/")
    assert page.status_code == 200
    assert "The fleet manifest cannot be read" in page.text
    assert "rr-01" in page.text  # what the store knows is still shown


@pytest.mark.parametrize("path", ["/", "/login", "/admin"])
def test_every_answer_carries_the_security_headers(web: Web, path: str) -> None:
    client = web.login("sato", "admin")
    answer = client.get(path, follow_redirects=False)
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"


def test_pages_are_in_japanese_first_and_english_on_request(web: Web) -> None:
    web.add_user("tanaka", "staff")
    assert "ログイン" in web.client(language="ja").get("/login").text
    assert "Log in" in web.client(language="en").get("/login").text
    assert "ログイン" in web.client(language="").get("/login").text  # the default


def test_completeness_shows_a_gap_with_its_times_and_a_reset_as_a_reset(web: Web) -> None:
    day = NOW - timedelta(hours=3)  # 2026-12-05 07:00 JST
    points = [
        Point(
            "link",
            {"node": "rr-01", "stream": "s-old00000"},
            {"seq": seq},
            to_ns(day + timedelta(minutes=seq)),
        )
        for seq in (1, 2, 3, 7, 8)  # 4-6 lost
    ]
    points += [
        Point(
            "link",
            {"node": "rr-01", "stream": "s-new00000"},
            {"seq": seq},
            to_ns(day + timedelta(minutes=30 + seq)),
        )
        for seq in (1, 2)  # a new outbox: a reset, not a gap of the old stream
    ]
    web.store.write(points)
    client = web.login("tanaka")
    data = client.get("/completeness.json?month=2026-12&node=rr-01").json()
    (cell,) = [r for r in data["rows"] if r["date"] == "2026-12-05"]
    assert (cell["received"], cell["expected"], cell["missing"]) == (7, 10, 3)
    assert data["gaps"] == [
        {
            "node": "rr-01",
            "stream": "s-old00000",
            "first_seq": 4,
            "last_seq": 6,
            "after": "2026-12-04T22:03:00+00:00",
            "before": "2026-12-04T22:07:00+00:00",
        }
    ]
    assert [(r["stream"], r["previous_stream"], r["first_seq"]) for r in data["resets"]] == [
        ("s-new00000", "s-old00000", 1)
    ]
    page = client.get("/completeness?month=2026-12&node=rr-01")
    assert page.status_code == 200
    assert "4–6" in page.text
    assert "a new stream started at" in page.text
    assert client.get("/completeness?month=2026-13").status_code == 422
    assert client.get("/completeness?node=Bad%20Node").status_code == 422


def test_a_trial_page_shows_its_figures_as_chart_table_and_export(web: Web) -> None:
    at = NOW - timedelta(hours=2)  # 2026-12-05 08:00 JST
    tags = {"node": "rr-01", "trial": "restroom-health", "site": "tsukuba-stn-restroom"}
    web.store.write(
        [
            Point("help_call", tags, {"pressed": True}, to_ns(at)),
            Point("help_call", tags, {"pressed": True}, to_ns(at + timedelta(minutes=5))),
            Point("visit", {**tags, "stall": "1"}, {"duration_s": 90.0}, to_ns(at)),
            # Another trial's call is not this trial's.
            Point("help_call", {**tags, "trial": "micro-mobility"}, {"pressed": True}, to_ns(at)),
        ]
    )
    client = web.login("tanaka")
    page = client.get("/trials/restroom-health?month=2026-12")
    assert page.status_code == 200
    assert "/trials/restroom-health/charts/help_calls_by_hour.svg?month=2026-12" in page.text
    rows = client.get("/trials/restroom-health/figures/help_calls_by_hour.json?month=2026-12")
    by_hour = {r["hour"]: r["help_calls_by_hour"] for r in rows.json()["rows"]}
    assert by_hour[8] == 2.0
    assert by_hour[9] is None
    visits = client.get("/trials/restroom-health/figures/visits_per_day.json?month=2026-12")
    assert {r["day"]: r["visits_per_day"] for r in visits.json()["rows"]}[5] == 1.0
    chart = client.get("/trials/restroom-health/charts/help_calls_by_hour.svg?month=2026-12")
    assert chart.headers["content-type"] == "image/svg+xml"
    assert b"<title>Help calls by hour of day</title>" in chart.content
    report = client.get("/trials/restroom-health/report?month=2026-12")
    assert "monthly report" in report.text
    assert client.get("/trials/nope").status_code == 404
    assert client.get("/trials/restroom-health/figures/nope.csv").status_code == 404


@pytest.mark.parametrize("trial", ["restroom-health", "micro-mobility", "resident-kiosk"])
def test_every_trial_page_and_chart_renders_with_data_in_both_languages(
    web: Web, trial: str
) -> None:
    web.store.write(fleet_points(MANIFEST, NOW - timedelta(hours=5)))
    for language in ("ja", "en"):
        client = web.login(f"user-{language}", language=language)
        page = client.get(f"/trials/{trial}?month=2026-12")
        assert page.status_code == 200, page.text
        charts = re.findall(r'src="(/trials/[^"]+\.svg\?month=2026-12)"', page.text)
        assert charts, "no chart on the page"
        for chart in charts:
            answer = client.get(chart.replace("&amp;", "&"))
            assert answer.status_code == 200
            assert answer.content.startswith(b"<?xml")
        report = client.get(f"/trials/{trial}/report?month=2026-12")
        assert report.status_code == 200


def test_vehicles_per_station_and_sessions_by_language_count_what_they_say(web: Web) -> None:
    day1 = NOW - timedelta(days=2)  # 2026-12-03 10:00 JST
    day2 = NOW - timedelta(days=1)
    st = {"node": "st-01", "trial": "micro-mobility", "site": "tsukuba-stn-parking"}
    ks = {"node": "ks-01", "trial": "resident-kiosk", "site": "city-hall-lobby"}
    points = [
        # st-01 hears vehicles 1, 2, 3 on the first day (1 twice), only 4 on the second.
        Point("parked_vehicle", {**st, "vehicle": v}, {"odometer_m": 1.0}, to_ns(day1 + m))
        for v, m in (
            ("1", timedelta(0)),
            ("1", timedelta(minutes=5)),
            ("2", timedelta(0)),
            ("3", timedelta(0)),
        )
    ]
    points.append(Point("parked_vehicle", {**st, "vehicle": "4"}, {"odometer_m": 1.0}, to_ns(day2)))
    for hour, (lang, text, count) in enumerate(
        [("vi", "7", 7), ("vi", "5", 5), ("en", "<5", None), ("ja", "9", 9)]
    ):
        fields: dict[str, FieldValue] = {"count_text": text}
        if count is not None:
            fields["count"] = count
        points.append(
            Point(
                "kiosk_usage",
                {**ks, "dimension": "language", "value": lang},
                fields,
                to_ns(day1 + timedelta(hours=hour)),
            )
        )
    web.store.write(points)
    client = web.login("tanaka")
    stations = client.get(
        "/trials/micro-mobility/figures/vehicles_per_station.json?month=2026-12"
    ).json()["rows"]
    assert {r["node"]: r["vehicles_per_station"] for r in stations} == {
        "st-01": 2.0,
        "st-02": None,
    }
    languages = client.get(
        "/trials/resident-kiosk/figures/sessions_by_language.json?month=2026-12"
    ).json()["rows"]
    assert {r["value"]: r["sessions_by_language"] for r in languages} == {"ja": 9.0, "vi": 12.0}
    api = client.get("/trials/resident-kiosk?month=2026-12")
    assert "Kiosk sessions by language this month" in api.text


def test_a_node_page_shows_its_readings_and_exports_them_one_value_a_cell(web: Web) -> None:
    tags = {"node": "rr-01", "trial": "restroom-health", "site": "tsukuba-stn-restroom"}
    at = NOW - timedelta(hours=1)
    web.store.write(
        [
            _link("rr-01", 2),
            Point("occupancy", {**tags, "stall": "1"}, {"occupied_s": 120.5}, to_ns(at)),
            Point("help_call", tags, {"pressed": True}, to_ns(at + timedelta(minutes=1))),
            Point("node_health", tags, {"outbox_readings": 3, "cpu_temp_c": 51.25}, to_ns(at)),
            Point("fleet_state", {"node": "rr-01"}, {"software": "0.2.0"}, to_ns(at)),
        ]
    )
    client = web.login("tanaka")
    page = client.get("/nodes/rr-01")
    assert page.status_code == 200
    assert "occupied_s=120.5" in page.text
    assert "0.2.0" in page.text
    rows = client.get("/nodes/rr-01/readings.json").json()["rows"]
    by_measurement = {r["measurement"]: r for r in rows}
    assert by_measurement["occupancy"]["occupied_s"] == 120.5
    assert by_measurement["occupancy"]["tag_stall"] == "1"
    assert by_measurement["help_call"]["pressed"] is True
    assert by_measurement["node_health"]["outbox_readings"] == 3
    excel = client.get("/nodes/rr-01/readings.excel.csv")
    header = excel.content.decode("utf-8-sig").splitlines()[0].split(",")
    assert header[:2] == ["When", "Measurement"]
    assert {"occupied_s", "pressed", "outbox_readings", "stall"} <= set(header)
    assert client.get("/nodes/zz-99").status_code == 404
    assert client.get("/nodes/rr-01/readings.xlsx").status_code == 404
