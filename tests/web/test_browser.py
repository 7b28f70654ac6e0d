"""The staff web app in Debian's headless Chromium against the real pipeline: a simulated node
publishing to Mosquitto, the collector writing to influxd, the app reading influxd.

Few tests, each of what only a browser shows: a node going offline on the live page, a gap the
test made on the completeness page, an export that downloads and re-parses, forms that refuse a
missing CSRF token, roles, accessibility (axe-core, WCAG 2.1 AA, both languages, keyboard only),
and the monthly report as Chromium prints it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Browser, Locator, Page, expect

from cloud.web.accounts import create_user
from cloud.web.app import create_app
from cloud.web.db import Database
from cloud.web.settings import WebConfig
from protocol import Topics
from tests.cloud.harness import (
    CollectorProcess,
    influx_store,
    write_collector_config,
    write_fleet,
)
from tests.integration.nodes import NodeProcess, wait_for, write_node_config
from tests.services import InfluxServer, MosquittoServer
from tests.web.browser import Served, axe_violations, chromium
from tests.web.conftest import PASSWORD

pytestmark = pytest.mark.integration

NODE = "br-01"
GAP_NODE = "gap-01"


@dataclass
class Pipeline:
    url: str
    node: NodeProcess
    influx: InfluxServer
    broker: MosquittoServer
    tmp: Path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def pipeline(
    tmp_path_factory: pytest.TempPathFactory,
    services_dir: Path,
) -> Iterator[Pipeline]:
    tmp = tmp_path_factory.mktemp("browser")
    broker_dir = Path(services_dir) / "browser-mosquitto"
    broker_dir.mkdir(mode=0o711)
    influx_dir = Path(services_dir) / "browser-influxd"
    influx_dir.mkdir(mode=0o711)
    with MosquittoServer(broker_dir) as broker, InfluxServer(influx_dir) as influx:
        fleet = write_fleet(tmp / "fleet.toml", [NODE, GAP_NODE], kind="kiosk")
        collector = CollectorProcess(
            write_collector_config(
                tmp / "collector",
                broker=broker,
                store=influx_store(influx),
                manifest=fleet.path,
                max_delay_ms=50,
            ),
            broker=broker,
        ).start()
        node = NodeProcess(
            write_node_config(tmp / "node", node=NODE, port=broker.port, rate=5.0)
        ).start()
        config = WebConfig.model_validate(
            {
                "web": {
                    "expected_interval_s": {"kiosk": 1.0},
                    "stale_after": 2.0,
                    "offline_after": 4.0,
                    "refresh_s": 1,
                },
                "database": {"url": f"sqlite:///{tmp / 'web.sqlite'}"},
                "store": influx_store(influx),
                "fleet": {"manifest": str(fleet.path)},
            }
        )
        db = Database(config.database.url)
        db.upgrade()
        with db.session() as s:
            create_user(s, username="tanaka", password=PASSWORD, role="staff", actor="test")
            create_user(s, username="sato", password=PASSWORD, role="admin", actor="test")
        served = Served(create_app(config, db=db)).start()
        try:
            yield Pipeline(served.url, node, influx, broker, tmp)
        finally:
            served.stop()
            node.kill()
            collector.terminate()


def _login(browser: Browser, pipeline: Pipeline, user: str, *, language: str = "en") -> Page:
    context = browser.new_context(locale=language, accept_downloads=True)
    page = context.new_page()
    page.goto(f"{pipeline.url}/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    page.get_by_label("Username" if language == "en" else "ユーザー名").fill(user)
    page.get_by_label("Password" if language == "en" else "パスワード").fill(PASSWORD)
    page.get_by_role("button", name="Log in" if language == "en" else "ログイン").click()
    expect(page).to_have_url(f"{pipeline.url}/")
    return page


def _row(page: Page, node: str) -> Locator:
    return page.locator("#fleet-table tr", has=page.get_by_role("link", name=node, exact=True))


def test_the_fleet_page_shows_a_node_go_offline_when_it_is_killed(
    browser: Browser, pipeline: Pipeline
) -> None:
    page = _login(browser, pipeline, "tanaka")
    expect(_row(page, NODE)).to_contain_text("online", timeout=30_000)
    pipeline.node.kill()
    # No reload: the table refreshes itself and the state follows the data that stopped.
    expect(_row(page, NODE)).to_contain_text("stale", timeout=20_000)
    expect(_row(page, NODE)).to_contain_text("offline", timeout=20_000)
    page.screenshot(path=str(pipeline.tmp / "fleet-offline.png"), full_page=True)
    page.context.close()


def _publish_envelopes(broker: MosquittoServer, seqs: list[int]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gap-maker", protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    now = datetime.now(UTC)
    try:
        for seq in seqs:
            body = {
                "v": 1,
                "node": GAP_NODE,
                "stream": "gapstream01",
                "seq": seq,
                "sent_at": (now + timedelta(milliseconds=seq)).isoformat(),
                "readings": [
                    {
                        "m": "probe",
                        "at": (now + timedelta(milliseconds=seq)).isoformat(),
                        "fields": {"v": seq},
                    }
                ],
            }
            client.publish(Topics().data(GAP_NODE), json.dumps(body), qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def test_completeness_shows_a_gap_the_test_made_and_its_export_reparses(
    browser: Browser, pipeline: Pipeline
) -> None:
    _publish_envelopes(pipeline.broker, [1, 2, 3, 5, 6])
    wait_for("the gap node's envelopes in the store", lambda: _count_gap_links(pipeline) >= 5, 30)
    page = _login(browser, pipeline, "tanaka")
    page.get_by_role("link", name="Completeness").click()
    page.get_by_role("link", name=GAP_NODE, exact=True).first.click()
    gaps = page.locator("table", has=page.get_by_role("columnheader", name="Missing seqs"))
    expect(gaps).to_contain_text("gap-01")
    expect(gaps.locator("tbody tr").first.locator("td").nth(2)).to_have_text("4")
    page.screenshot(path=str(pipeline.tmp / "completeness.png"), full_page=True)
    with page.expect_download() as info:
        page.get_by_role("link", name="CSV for Excel").click()
    download = info.value
    body = Path(download.path()).read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    shown = page.request.get(f"{page.url.split('?')[0]}.json?{page.url.split('?')[1]}").json()
    assert len(rows) - 1 == len(shown["rows"])
    got = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in rows[1:]}
    want = {(r["node"], r["date"]): (r["received"], r["expected"]) for r in shown["rows"]}
    assert got == want
    assert sum(v[0] for v in got.values()) == 5
    assert sum(v[1] for v in got.values()) == 6
    page.context.close()


def _count_gap_links(pipeline: Pipeline) -> int:
    rows = pipeline.influx.query(
        'SELECT count("seq") FROM "link" WHERE "node" = \'gap-01\'', db="machikado"
    )["results"][0].get("series", [])
    return int(rows[0]["values"][0][1]) if rows else 0


def test_a_form_without_its_csrf_token_is_refused_and_staff_cannot_reach_admin(
    browser: Browser, pipeline: Pipeline
) -> None:
    page = _login(browser, pipeline, "tanaka")
    assert page.get_by_role("link", name="Admin").count() == 0
    answer = page.goto(f"{pipeline.url}/admin")
    assert answer is not None
    assert answer.status == 403
    page.goto(f"{pipeline.url}/")
    page.locator("form[action='/logout'] input[name='csrf']").evaluate("e => e.remove()")
    with page.expect_response(f"{pipeline.url}/logout") as refused:
        page.get_by_role("button", name="Log out").click()
    assert refused.value.status == 403
    page.goto(f"{pipeline.url}/")
    expect(page).to_have_url(f"{pipeline.url}/")  # still logged in: the forged logout failed
    page.context.close()


PAGES = [
    "/",
    "/trials",
    "/trials/chaos-trial",
    "/trials/chaos-trial/report",
    "/completeness",
    f"/nodes/{NODE}",
    "/admin",
    "/admin/audit",
]


@pytest.mark.parametrize("language", ["ja", "en"])
def test_every_page_passes_axe_in_both_languages(
    browser: Browser, pipeline: Pipeline, language: str
) -> None:
    found = {}
    # Before logging in: the login page, with and without an error on it.
    anonymous = browser.new_context(locale=language).new_page()
    anonymous.goto(f"{pipeline.url}/login")
    found["/login"] = axe_violations(anonymous)
    anonymous.fill("#username", "nobody")
    anonymous.fill("#password", "wrong password")
    anonymous.locator("button.primary").click()
    found["/login (refused)"] = axe_violations(anonymous)
    anonymous.context.close()
    page = _login(browser, pipeline, "sato", language=language)
    # Nothing a page asks for is refused by its own Content-Security-Policy (or fails).
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    for path in [*PAGES, "/nodes/no-such-node"]:  # the last: an error page (404)
        page.goto(f"{pipeline.url}{path}")
        page.wait_for_load_state("networkidle")
        assert page.locator("html").get_attribute("lang") == language
        found[path] = axe_violations(page)
    found = {path: v for path, v in found.items() if v}
    assert found == {}, json.dumps(found, indent=1, ensure_ascii=False)
    # The 404 page's own status is the one error a browser logs.
    assert [e for e in errors if "404" not in e] == []
    page.context.close()


def test_the_pages_work_by_keyboard_alone(browser: Browser, pipeline: Pipeline) -> None:
    context = browser.new_context(locale="en")
    page = context.new_page()
    page.goto(f"{pipeline.url}/login")
    # The username field has the focus on arrival; Tab goes on to the password.
    assert page.evaluate("document.activeElement.id") == "username"
    page.keyboard.type("tanaka")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{pipeline.url}/")
    page.keyboard.press("Tab")  # the skip link comes first on every page
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    # Tab through the page until the completeness link, then follow it with Enter.
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Completeness":
            break
    else:
        raise AssertionError("the Completeness link cannot be reached with Tab")
    focus_ring = page.evaluate("getComputedStyle(document.activeElement).boxShadow")
    assert focus_ring != "none"
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/completeness$"))
    context.close()


def test_the_monthly_report_prints_as_a_pdf_that_renders(
    browser: Browser, pipeline: Pipeline
) -> None:
    page = _login(browser, pipeline, "tanaka", language="ja")
    page.goto(f"{pipeline.url}/trials/chaos-trial/report")
    pdf = pipeline.tmp / "report.pdf"
    page.pdf(path=str(pdf), format="A4", print_background=True)
    assert pdf.read_bytes().startswith(b"%PDF")
    png = pipeline.tmp / "report"
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(png)],
        check=True,
        timeout=60,
    )
    assert any(pipeline.tmp.glob("report-*.png"))
    page.context.close()
