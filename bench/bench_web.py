"""The staff web app over a year of a 30-node fleet in influxd 1.6.7, beside the raw queries a
Grafana dashboard of the same figures would run on the same data.

The fleet (:mod:`bench.web_fleet`, about 10.8 million points) is written to a real influxd;
``machikado cloud web`` serves it on a free port (uvicorn, one worker, as deployed) with its
rollups made first. Every page and API answer is fetched ``REPEAT`` times after a warm-up, one
request at a time, logged in as staff; p50 and p95 of the wall time to the last byte. The
reference for each is the raw InfluxQL over the same range (no rollups: what a Grafana panel
sends), timed the same way against influxd directly.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import statistics
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.common import Row
from bench.harness import Report, ignore, quiet_logs, service_dir
from bench.web_fleet import lines, manifest, now_hour

REPEAT = 20
WARMUP = 2
PASSWORD = "a long enough password for staff"
PAGE_P95_MS = 300.0
API_P95_MS = 150.0
JST = ZoneInfo("Asia/Tokyo")


def _write(url: str, db: str, chunk: Sequence[str]) -> None:
    body = "\n".join(chunk).encode()
    req = urllib.request.Request(f"{url}/write?db={db}&precision=s", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=120) as resp:
        if resp.status != 204:
            raise RuntimeError(f"influxd refused a write: {resp.status}")


def load(url: str, db: str, *, days: int, end: datetime, report: Report) -> int:
    """Write the fleet's ``days`` to influxd; how many points."""
    total = 0
    for i, day in enumerate(lines(end, days=days)):
        for j in range(0, len(day), 20_000):
            _write(url, db, day[j : j + 20_000])
        total += len(day)
        if i % 10 == 0:
            report(f"loading day {i + 1} of {days}: {total:,} points")
    return total


def _query(url: str, db: str, q: str) -> bytes:
    form = urllib.parse.urlencode({"q": q, "db": db, "epoch": "ns"}).encode()
    with urllib.request.urlopen(f"{url}/query", data=form, timeout=120) as resp:
        body: bytes = resp.read()
    if b'"error"' in body:
        raise RuntimeError(f"influxd: {body[:300]!r} for {q}")
    return body


def timed(fn: Callable[[], object], *, repeat: int = REPEAT) -> list[float]:
    """Milliseconds of ``repeat`` calls after ``WARMUP`` untimed ones."""
    for _ in range(WARMUP):
        fn()
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def p95(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


class Browser:
    """A logged-in staff member, as far as HTTP goes (cookies, the CSRF field)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str, headers: dict[str, str] | None = None) -> bytes:
        req = urllib.request.Request(self.base + path, headers=headers or {})
        with self.opener.open(req, timeout=120) as resp:
            if resp.status != 200:
                raise RuntimeError(f"{path}: HTTP {resp.status}")
            body: bytes = resp.read()
            return body

    def login(self, user: str) -> None:
        page = self.get("/login").decode()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        form = urllib.parse.urlencode(
            {"username": user, "password": PASSWORD, "csrf": csrf[1], "next": "/"}
        ).encode()
        with self.opener.open(self.base + "/login", data=form, timeout=60) as resp:
            if "/login" in resp.url:
                raise RuntimeError("the benchmark could not log in")


def _month_bounds(month: datetime) -> tuple[int, int]:
    first = month.astimezone(JST).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + timedelta(days=32)).replace(day=1)
    return int(first.timestamp() * 1e9), int(following.timestamp() * 1e9)


def grafana_queries(month: datetime, now: datetime) -> dict[str, list[str]]:
    """What a Grafana dashboard of each page's figures sends to influxd: raw InfluxQL, no
    rollups, over the same range; for the trials, the panels of the Grafana bundle
    (:mod:`cloud.web.grafana`) with the month as their time filter."""
    from cloud.web.grafana import panel_queries
    from cloud.web.views.trials import FIGURES

    lo, hi = _month_bounds(month)
    in_month = f"time >= {lo} AND time < {hi}"
    last90 = f"time >= {int((now - timedelta(days=90)).timestamp() * 1e9)}"
    return {
        "fleet": [
            f'SELECT last("seq") FROM "link" WHERE {last90} GROUP BY "node"',
            f'SELECT last("software") FROM "fleet_state" WHERE {last90} GROUP BY "node"',
            f'SELECT last("outbox_readings"), last("link_alarms") FROM "node_health" '
            f'WHERE {last90} GROUP BY "node"',
            f'SELECT last("battery_pct") FROM "ride" WHERE {last90} GROUP BY "node"',
        ],
        "completeness": [
            f'SELECT count(distinct("seq")), spread("seq") FROM "link" WHERE {in_month} '
            f'GROUP BY time(1d, -9h), "node", "stream"',
        ],
        **{
            f"trial {short}": [
                q.replace("$timeFilter", in_month)
                for kind in kinds
                for spec in FIGURES[kind]
                for q in panel_queries(spec, trial)
            ]
            + [
                f'SELECT sum("readings") FROM "link" WHERE {in_month} '
                f'GROUP BY time(1d, -9h), "node"'
            ]
            for short, trial, kinds in (
                ("restroom", "restroom-health", ("restroom",)),
                ("mobility", "micro-mobility", ("vehicle", "station")),
                ("kiosk", "resident-kiosk", ("kiosk",)),
            )
        },
        "chart": [
            q.replace("$timeFilter", in_month)
            for q in panel_queries(FIGURES["restroom"][0], "restroom-health")
        ],
        "node": [
            f'SELECT * FROM "occupancy" WHERE "node" = \'rr-01\' AND '
            f"time >= {int((now - timedelta(days=7)).timestamp() * 1e9)} "
            f"ORDER BY time DESC LIMIT 20",
            f'SELECT mean("latency_s") FROM "link" WHERE "node" = \'rr-01\' AND '
            f"time >= {int((now - timedelta(days=1)).timestamp() * 1e9)} GROUP BY time(1h)",
            f'SELECT "seq" FROM "link" WHERE "node" = \'rr-01\' AND '
            f"time >= {int((now - timedelta(days=7)).timestamp() * 1e9)}",
        ],
    }


def run(
    *,
    days: int = 365,
    report: Report | None = None,
    repeat: int = REPEAT,
    keep: Path | None = None,
) -> list[Row]:
    """Load the fleet, serve the app, time every page and API answer and their raw queries.

    ``keep``: an influxd data dir to reuse (loaded once, kept after), for measuring again
    without loading 10 million points each time.
    """
    import uvicorn

    from cloud.web.accounts import create_api_token, create_user
    from cloud.web.app import create_app
    from cloud.web.db import Database
    from cloud.web.settings import WebConfig
    from tests.services import InfluxServer, free_port

    report = report or ignore
    end = now_hour()
    rows: list[Row] = []
    with quiet_logs(), service_dir("bench-web-") as base, tempfile.TemporaryDirectory() as tmp:
        report("starting influxd")
        data = keep or base / "influxd"
        loaded = data / "loaded.json"
        with InfluxServer(data) as influx:
            db = "machikado"
            if loaded.exists():
                info = json.loads(loaded.read_text())
                points, end = int(info["points"]), datetime.fromisoformat(info["end"])
            else:
                _query(influx.url, db, f'CREATE DATABASE "{db}"')
                points = load(influx.url, db, days=days, end=end, report=report)
                loaded.write_text(json.dumps({"points": points, "end": end.isoformat()}))
            month = (end.astimezone(JST).replace(day=1) - timedelta(days=1)).replace(day=1)
            fleet = Path(tmp) / "fleet.toml"
            fleet.write_text(manifest(), encoding="utf-8")
            config = WebConfig.model_validate(
                {
                    "web": {
                        "expected_interval_s": {
                            k: 300.0 for k in ("restroom", "vehicle", "station", "kiosk")
                        }
                    },
                    "database": {"url": f"sqlite:///{tmp}/web.sqlite"},
                    "store": {"kind": "influx_v1", "url": influx.url, "database": db},
                    "fleet": {"manifest": str(fleet)},
                }
            )
            database = Database(config.database.url)
            database.upgrade()
            with database.session() as s:
                create_user(s, username="bench", password=PASSWORD, role="staff", actor="bench")
                token = create_api_token(s, name="bench", actor="bench")
            app = create_app(config, db=database)
            report("making the rollups")
            rollup_s = _rollup(app, report)
            port = free_port("127.0.0.1")
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    host="127.0.0.1",
                    port=port,
                    log_config=None,
                    lifespan="off",
                    access_log=False,
                )
            )
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.05)
            try:
                browser = Browser(f"http://127.0.0.1:{port}")
                browser.login("bench")
                m = f"{month:%Y-%m}"
                pages = {
                    "fleet": "/",
                    "completeness": f"/completeness?month={m}",
                    "completeness of one node": f"/completeness?month={m}&node=rr-01",
                    "trial restroom": f"/trials/restroom-health?month={m}",
                    "trial mobility": f"/trials/micro-mobility?month={m}",
                    "trial kiosk": f"/trials/resident-kiosk?month={m}",
                    "chart": f"/trials/restroom-health/charts/visits_per_day.svg?month={m}",
                    "node": "/nodes/rr-01",
                    "fleet export (Excel CSV)": "/fleet.excel.csv",
                    "completeness export (CSV)": f"/completeness.csv?month={m}",
                }
                api = {
                    "api nodes": "/api/v1/nodes",
                    "api completeness": f"/api/v1/completeness?month={m}",
                    "api trial figures": f"/api/v1/trials/restroom-health/figures?month={m}",
                    "api readings (a day)": "/api/v1/readings?measurement=occupancy&node=rr-01"
                    f"&since={urllib.parse.quote((end - timedelta(days=1)).isoformat())}",
                }
                raw = grafana_queries(month, end)
                reference: dict[str, list[float]] = {}
                for name, qs in raw.items():
                    report(f"timing the raw queries of {name}")

                    def send(queries: list[str] = qs) -> None:
                        for q in queries:
                            _query(influx.url, db, q)

                    reference[name] = timed(send, repeat=repeat)
                for name, path in {**pages, **api}.items():
                    report(f"timing {name}")
                    headers = {"Authorization": f"Bearer {token}"} if name.startswith("api") else {}

                    def fetch(p: str = path, h: dict[str, str] = headers) -> None:
                        browser.get(p, h)

                    ms = timed(fetch, repeat=repeat)
                    ref_name = {
                        "fleet": "fleet",
                        "fleet export (Excel CSV)": "fleet",
                        "api nodes": "fleet",
                        "completeness": "completeness",
                        "completeness of one node": "completeness",
                        "completeness export (CSV)": "completeness",
                        "api completeness": "completeness",
                        "trial restroom": "trial restroom",
                        "trial mobility": "trial mobility",
                        "trial kiosk": "trial kiosk",
                        "chart": "chart",
                        "api trial figures": "trial restroom",
                        "node": "node",
                    }.get(name)
                    ref = p95(reference[ref_name]) if ref_name else None
                    limit = API_P95_MS if name.startswith("api") else PAGE_P95_MS
                    rows.append(
                        Row(
                            name=f"web p95 {name} (p50 {statistics.median(ms):.0f} ms)",
                            ours=p95(ms),
                            unit="ms",
                            reference=ref,
                            reference_label=(
                                f"raw InfluxQL of the same figures ({ref_name}), p95"
                                if ref_name
                                else ""
                            ),
                            higher_is_better=False,
                            target=f"<= {limit:g} ms",
                        )
                    )
            finally:
                server.should_exit = True
                thread.join(10)
    rows.append(
        Row(name=f"web data: points in influxd over {days} days", ours=points, unit="points")
    )
    rows.append(Row(name="web rollups made from nothing (s)", ours=rollup_s, unit="s"))
    return rows


def _rollup(app: object, report: Report) -> float:
    """Make the app's rollups over all the data, as a first start does; seconds taken."""
    started = time.perf_counter()
    roll = getattr(getattr(app, "state", None), "web", None)
    if roll is not None and hasattr(roll, "rollup_all"):
        roll.rollup_all(progress=report)
    return time.perf_counter() - started


if __name__ == "__main__":
    import sys

    from rich.console import Console

    from bench.__main__ import render

    days = int(sys.argv[1]) if len(sys.argv) > 1 else 365
    keep = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    Console().print(render(run(days=days, report=print, keep=keep), title="web app"))
