"""What two residents' sessions leave in a real InfluxDB, and in the logs: counts per hour only.

The real kiosk app (offscreen) with its real node runs on a real Mosquitto; the real collector
(``machikado cloud collect``) writes into a real ``influxd``. Two residents use the kiosk: one
reaches the 119 screen in Vietnamese, one reads about support after violence in large text and
asks a doctor. The scenario then moves the node's usage clock past the hour and waits until the
cloud has stored what the node sent. The test reads back every measurement, series and field,
and every log line, looking for anything that belongs to one of those sessions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from nacl.public import PrivateKey

from tests.cloud.harness import (
    CollectorProcess,
    influx_measurements,
    influx_rows,
    influx_store,
    quote_ident,
    reaping,
    write_collector_config,
    write_fleet,
)
from tests.kiosk.conftest import LANGS, TEST_PACK, Kiosk, RunScenario
from tests.kiosk.consult_service import ConsultService, kiosk_config
from tests.kiosk.test_app_flows import _green_path, _start_in
from tests.services import InfluxServer, MosquittoServer

DB = "machikado"
#: Information categories no other text in the system would contain.
CATEGORIES = ("zq_violence_support", "zq_debt_help")
TIERS = ("red", "yellow", "green", "white")


def _pack() -> str:
    """The UI test pack with two sensitive-sounding categories instead of health and waste."""
    pack = json.loads(TEST_PACK)
    renamed = dict(zip(("health", "waste"), CATEGORIES, strict=True))
    pack["what"] = {renamed[tag]: labels for tag, labels in pack["what"].items()}
    for item in pack["items"]:
        item["what"] = [renamed[tag] for tag in item["what"]]
    return json.dumps(pack, ensure_ascii=False)


def scenario_two_residents_then_the_hour_ends(k: Kiosk) -> None:
    node = k.node
    usage = node.usage
    # Both sessions fall into one period: start a minute into the period the clock is in.
    k.wall.advance(usage.period_start() + 60 - k.wall())
    period = usage.period_start()

    # A resident in Vietnamese: a red flag, the 119 screen, then "finish".
    _start_in(k, "vi")
    k.tap_id("home", "consult")
    k.wait_for_screen("triage")
    first = k.app.session.triage.current
    red = next(o for o in first.options if o.tier is not None and o.tier.value == "red")
    k.tap_id("triage", f"opt_{red.id}")
    k.wait_for_screen("emergency")
    k.tap(k.bar("finish"))
    k.wait_for_screen("attract")

    # A resident in English, large text: support after violence, then a doctor.
    _start_in(k, "en")
    k.tap(k.bar("larger"))
    k.tap_id("home", "info")
    k.wait_for_screen("wizard")
    k.tap_id("wizard", f"what_{CATEGORIES[0]}")
    k.tap_id("wizard", "show")
    k.wait_for_screen("info")
    assert k.app.screen("info").count > 0
    k.app.go("home")
    k.tap_id("home", "consult")
    k.wait_for_screen("triage")
    answers: list[str] = []
    for n, option in enumerate(_green_path(k), start=1):
        answers.append(option)
        k.tap_id("triage", f"opt_{option}")
        k.driver.wait_until(lambda n=n: len(k.app.session.triage.answers) == n)
    k.wait_for_screen("result")
    k.tap_id("result", "ask_doctor")
    k.wait_for_screen("doctor")
    k.tap_id("doctor", "send")
    k.driver.wait_until(lambda: k.app.screen("doctor").phase == "waiting")
    ticket = node.current_ticket
    k.driver.wait_until(lambda: not node.runtime.outbox.message_keys(), timeout_s=30)
    k.tap(k.bar("finish"))
    k.wait_for_screen("attract")

    # The hour ends: the node sends its counts, the cloud stores them and sends a receipt.
    before = node.runtime.outbox.stats().produced
    k.wall.advance(usage.period_s)

    def stored() -> bool:
        stats = node.runtime.outbox.stats()
        return bool(stats.produced > before and stats.receipted == stats.produced)

    k.driver.wait_until(stored, timeout_s=30)
    print("PERIOD:", period, flush=True)
    # Answer ids such as "no" would match too much; the longer ones name what was answered.
    said = [a for a in {*answers, red.id} if len(a) >= 5]
    print("SECRETS:", json.dumps([ticket.number, ticket.code, *said]), flush=True)


def test_two_sessions_leave_only_suppressed_counts_at_the_hour_in_influxdb_and_the_logs(
    run_scenario: RunScenario,
    mosquitto: MosquittoServer,
    influxdb: InfluxServer,
    tmp_path: Path,
) -> None:
    fleet = write_fleet(tmp_path / "fleet.toml", ["k-01"], kind="kiosk")
    collector_config = write_collector_config(
        tmp_path / "cloud",
        broker=mosquitto,
        store=influx_store(influxdb, DB),
        manifest=fleet.path,
        max_delay_ms=50,
    )
    pack = tmp_path / "pack.json"
    pack.write_text(_pack(), encoding="utf-8")
    key = PrivateKey.generate()
    node_config = kiosk_config(
        tmp_path / "node", port=mosquitto.port, public_key=bytes(key.public_key)
    )
    with reaping() as children, ConsultService(mosquitto, private_key=key):
        collector = CollectorProcess(collector_config, broker=mosquitto).start()
        children.append(collector)
        proc = run_scenario(
            "tests.kiosk.test_usage_store:scenario_two_residents_then_the_hour_ends",
            node_config=node_config,
            content_pack=pack,
        )
        assert collector.terminate() == 0
    period_ns = int(re.findall(r"^PERIOD: (\d+)$", proc.stdout, re.M)[0]) * 10**9
    secrets: list[str] = json.loads(re.findall(r"^SECRETS: (.+)$", proc.stdout, re.M)[0])

    # -- the store: every measurement, every series, every field --------------------------------
    measurements = influx_measurements(influxdb, DB)
    assert "kiosk_usage" in measurements
    assert "kiosk_session" not in measurements
    rows = {m: influx_rows(influxdb, DB, f"SELECT * FROM {quote_ident(m)}") for m in measurements}
    every = rows.pop("kiosk_usage")
    # Times are hours' starts, nothing finer. (The node may also have sent the hour before,
    # empty, if the scenario began on the stroke of an hour.)
    assert {r["time"] % (3600 * 10**9) for r in every} == {0}
    assert {r["time"] for r in every} <= {period_ns, period_ns - 3600 * 10**9}
    usage = [r for r in every if r["time"] == period_ns]
    cells = {(r["dimension"], r["value"]) for r in usage}
    assert len(cells) == len(usage), "each cell once"
    # Every value of every dimension is there, and each says the same: fewer than 5.
    assert cells == {
        ("sessions", "all"),
        *(("language", code) for code in (*LANGS, "none")),
        *(("tier", tier) for tier in TIERS),
        ("consultation", "requested"),
        *(("info_category", c) for c in CATEGORIES),
        ("display", "large_text"),
        ("display", "high_contrast"),
    }
    assert {r["count_text"] for r in every} == {"<5"}
    fields = influx_rows(influxdb, DB, 'SHOW FIELD KEYS FROM "kiosk_usage"')
    assert {(f["fieldKey"], f["fieldType"]) for f in fields} == {("count_text", "string")}, (
        "no exact count below 5"
    )
    series = influx_rows(influxdb, DB, 'SHOW SERIES FROM "kiosk_usage"')
    assert len(series) == len(cells), "one series per cell: dimension and value, nothing else"
    # Nothing else in the store names a tier, a category, an answer, the ticket or a screen.
    other = json.dumps(rows, ensure_ascii=False)
    for word in [*TIERS, *CATEGORIES, *secrets, "emergency", "triage", "doctor", "kiosk_session"]:
        assert word not in other, word

    # -- the logs: the kiosk's process, the collector, the broker ------------------------------
    # (less the lines the scenario printed for this test)
    kiosk_out = re.sub(r"^(PERIOD|SECRETS): .*$", "", proc.stdout, flags=re.M)
    logs = "\n".join(
        [
            kiosk_out,
            proc.stderr,
            collector.log.read_text(errors="replace"),
            _broker_log(mosquitto),
        ]
    )
    for word in [*CATEGORIES, *secrets, "kiosk_session", "triage_emergency", "screen_shown"]:
        assert word not in logs, word
    # No log field holds a tier or either resident's language, and none is named for them.
    holds = re.compile(r"=\W*(red|yellow|green|white|vi|en)\b")
    named = re.compile(r"\b(tier|language|screen|answers?|text|ticket|code|category|categories)=")
    assert [line for line in logs.splitlines() if holds.search(line) or named.search(line)] == []


def _broker_log(broker: MosquittoServer) -> str:
    return broker.log_path.read_text(errors="replace")
