"""The Grafana bundle: every InfluxQL query in its dashboards runs on the real influxd and
returns data, for every trial of the shipped fleet manifest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud.fleet import load_fleet
from cloud.store.influx_v1 import InfluxV1Store
from cloud.store.settings import StoreSettings
from cloud.web.grafana import bundle, queries_of, write_bundle
from tests.services import InfluxServer
from tests.web.conftest import MANIFEST, fleet_points


def test_every_query_of_the_bundle_returns_data_from_influxd(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    influxdb.query("CREATE DATABASE machikado")
    store = InfluxV1Store(influxdb.url, database="machikado")
    store.write(fleet_points(MANIFEST, datetime.now(UTC) - timedelta(hours=30)))
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
