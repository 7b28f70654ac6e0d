"""The Grafana bundle: every InfluxQL query in its dashboards runs on the real influxd and
returns data, for every trial of the shipped fleet manifest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud.fleet import load_fleet
from cloud.store.base import Point
from cloud.store.influx_v1 import InfluxV1Store
from cloud.store.read import to_ns
from cloud.store.settings import StoreSettings
from cloud.web.grafana import bundle, queries_of, write_bundle
from tests.services import InfluxServer
from tests.web.conftest import MANIFEST


def _points(fleet_path: Path) -> list[Point]:
    fleet = load_fleet(fleet_path)
    at = datetime.now(UTC) - timedelta(hours=30)
    out: list[Point] = []
    for i, n in enumerate(fleet.nodes):
        tags = {"node": n.id, "trial": n.trial, "site": n.site}
        t = to_ns(at + timedelta(minutes=i))
        out.append(
            Point(
                "link",
                {"node": n.id, "stream": "s-aaaaaaaa"},
                {"seq": 1, "readings": 3, "latency_s": 0.2},
                t,
            )
        )
        out.append(Point("node_health", tags, {"outbox_readings": 12}, t))
        if n.kind == "restroom":
            out += [
                Point("visit", {**tags, "stall": "1"}, {"duration_s": 80.0}, t),
                Point("occupancy", {**tags, "stall": "1"}, {"occupied_s": 600.0}, t),
                Point("help_call", tags, {"pressed": True}, t),
                Point("health_check", {**tags, "device": "scale"}, {"weight_kg": 61.5}, t),
                Point("health_check", {**tags, "device": "bp"}, {"systolic_mmhg": 121.0}, t),
                Point("health_check", {**tags, "device": "thermo"}, {"temperature_c": 36.4}, t),
            ]
        elif n.kind == "vehicle":
            out += [
                Point("trip", tags, {"distance_m": 1800.0, "duration_s": 600.0}, t),
                Point("ride", tags, {"battery_pct": 71.0, "speed_mps": 4.0}, t),
            ]
        elif n.kind == "station":
            out.append(Point("vehicle_arrived", {**tags, "vehicle": "7"}, {"odometer_m": 1.0}, t))
        elif n.kind == "kiosk":
            for dim in ("sessions", "consultation"):
                out.append(
                    Point(
                        "kiosk_usage",
                        {**tags, "dimension": dim, "value": "all"},
                        {"count": 6, "count_text": "6"},
                        t,
                    )
                )
    return out


def test_every_query_of_the_bundle_returns_data_from_influxd(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    influxdb.query("CREATE DATABASE machikado")
    store = InfluxV1Store(influxdb.url, database="machikado")
    store.write(_points(MANIFEST))
    settings = StoreSettings(kind="influx_v1", url=influxdb.url, database="machikado")
    files = bundle(load_fleet(MANIFEST), settings)
    queries = queries_of(files)
    assert len(queries) >= 12
    empty = []
    for q in queries:
        runnable = q.replace("$timeFilter", "time > now() - 7d").replace("$__interval", "1h")
        result = influxdb.query(runnable, db="machikado")["results"][0]
        values = [v for s in result.get("series", []) for row in s["values"] for v in row[1:]]
        if not any(v not in (None, 0) for v in values):
            empty.append(q)
    assert empty == []
    # One dashboard per trial, and the fleet's.
    names = {p for p in files if p.startswith("dashboards/")}
    assert len(names) == len(load_fleet(MANIFEST).trials) + 1
    written = write_bundle(tmp_path, load_fleet(MANIFEST), settings)
    assert len(written) == len(files)
    datasource = (tmp_path / "provisioning/datasources/machikado.yaml").read_text()
    assert influxdb.url in datasource
    assert "$MACHIKADO_STORE_PASSWORD" in datasource
    for path in written:
        if path.suffix == ".json":
            assert json.loads(path.read_text())["panels"]
