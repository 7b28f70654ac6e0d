"""A Grafana provisioning bundle for the fleet: an InfluxDB data source and a dashboard per trial.

``machikado cloud grafana --config PATH --out DIR`` writes::

    DIR/provisioning/datasources/machikado.yaml   InfluxDB (InfluxQL), from [store]
    DIR/provisioning/dashboards/machikado.yaml    a file provider for DIR/dashboards
    DIR/dashboards/<trial>.json                   the trial's figures, one panel each
    DIR/dashboards/fleet.json                     data received per node, link latency

Each panel's query is the raw InfluxQL of the same figure the web app draws, with Grafana's
``$timeFilter`` and ``$__interval``; a test runs every one against a real influxd. No secret is
written: the data source reads the store password from the environment variable
``MACHIKADO_STORE_PASSWORD`` of the Grafana server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cloud.fleet import Fleet
from cloud.store.influxql import quote_ident, quote_literal
from cloud.store.settings import StoreSettings
from cloud.web.views.trials import FIGURES, FigureSpec

DATASOURCE_UID = "machikado-influxdb"
_SLUG = re.compile(r"[^a-z0-9-]+")


def panel_queries(spec: FigureSpec, trial: str) -> list[str]:
    """The InfluxQL of one figure's panel: one query per field counted (Grafana stacks them)."""
    conds = [f'"trial" = {quote_literal(trial)}']
    conds += [f"{quote_ident(k)} = {quote_literal(v)}" for k, v in spec.where]
    where = " AND ".join([*conds, "$timeFilter"])
    bucket = "1h" if spec.shape == "per_hour_of_day" else "1d"
    # A series per tag value (per language); per node and vehicle for vehicles per station:
    # InfluxQL cannot count distinct tag values, so the panel shows each vehicle's reports.
    groups = "".join(
        f", {quote_ident(tag)}"
        for tag in (["node"] if spec.shape == "distinct_per_node" else []) + [spec.by]
        if tag
    )
    return [
        f"SELECT {spec.fn}({quote_ident(name)}) FROM {quote_ident(spec.measurement)}"
        f" WHERE {where} GROUP BY time({bucket}, -9h){groups} fill(null)"
        for name in spec.fields
    ]


def fleet_queries() -> dict[str, str]:
    return {
        "Envelopes received per node": (
            'SELECT count("seq") FROM "link" WHERE $timeFilter '
            'GROUP BY time($__interval), "node" fill(0)'
        ),
        "Link latency per node (s)": (
            'SELECT mean("latency_s") FROM "link" WHERE $timeFilter '
            'GROUP BY time($__interval), "node" fill(null)'
        ),
        "Outbox backlog per node (readings)": (
            'SELECT last("outbox_readings") FROM "node_health" WHERE $timeFilter '
            'GROUP BY time($__interval), "node" fill(previous)'
        ),
    }


def _panel(i: int, title: str, queries: list[str], unit: str = "") -> dict[str, Any]:
    return {
        "id": i + 1,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "influxdb", "uid": DATASOURCE_UID},
        "gridPos": {"x": 0, "y": i * 8, "w": 24, "h": 8},
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"drawStyle": "bars"}}},
        "targets": [
            {
                "refId": chr(ord("A") + j),
                "rawQuery": True,
                "resultFormat": "time_series",
                "query": q,
            }
            for j, q in enumerate(queries)
        ],
    }


def dashboard(uid: str, title: str, panels: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "uid": uid[:40],
        "title": title,
        "timezone": "Asia/Tokyo",
        "time": {"from": "now-30d", "to": "now"},
        "schemaVersion": 39,
        "editable": False,
        "panels": panels,
    }


def bundle(fleet: Fleet, store: StoreSettings) -> dict[str, str]:
    """Every file of the bundle: relative path -> text."""
    if store.kind == "sqlite":
        url, database = "http://127.0.0.1:8086", "machikado"
    else:
        url, database = store.url or "", store.database
    files: dict[str, str] = {}
    files["provisioning/datasources/machikado.yaml"] = "\n".join(
        [
            "# machikado's store of record, read with InfluxQL (InfluxDB 1.x, or 2.x/3.x through",
            "# their v1 compatibility API). The password comes from Grafana's environment.",
            "apiVersion: 1",
            "datasources:",
            "  - name: machikado",
            f"    uid: {DATASOURCE_UID}",
            "    type: influxdb",
            "    access: proxy",
            f"    url: {json.dumps(url)}",
            "    jsonData:",
            f"      dbName: {json.dumps(database)}",
            "      httpMode: POST",
            f"    user: {json.dumps(store.username or '')}",
            "    secureJsonData:",
            "      password: $MACHIKADO_STORE_PASSWORD",
            "",
        ]
    )
    files["provisioning/dashboards/machikado.yaml"] = "\n".join(
        [
            "apiVersion: 1",
            "providers:",
            "  - name: machikado",
            "    folder: machikado",
            "    type: file",
            "    allowUiUpdates: false",
            "    options:",
            "      path: /var/lib/grafana/dashboards/machikado",
            "",
        ]
    )
    for trial in fleet.trials:
        kinds = sorted({str(n.kind) for n in fleet.nodes if n.trial == trial.id})
        specs = [spec for kind in kinds for spec in FIGURES.get(kind, ())]
        panels = [
            _panel(i, spec.title, panel_queries(spec, trial.id), spec.unit)
            for i, spec in enumerate(specs)
        ]
        slug = _SLUG.sub("-", trial.id.lower()).strip("-") or "trial"
        files[f"dashboards/{slug}.json"] = json.dumps(
            dashboard(f"machikado-{slug}", trial.name, panels), indent=2, ensure_ascii=False
        )
    fleet_panels = [_panel(i, t, [q]) for i, (t, q) in enumerate(fleet_queries().items())]
    files["dashboards/fleet.json"] = json.dumps(
        dashboard("machikado-fleet", "machikado fleet", fleet_panels), indent=2
    )
    return files


def write_bundle(out: Path, fleet: Fleet, store: StoreSettings) -> list[Path]:
    written = []
    for relative, text in bundle(fleet, store).items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def queries_of(files: dict[str, str]) -> list[str]:
    """Every InfluxQL query in a bundle's dashboards."""
    out = []
    for relative, text in files.items():
        if relative.startswith("dashboards/"):
            for panel in json.loads(text)["panels"]:
                out += [t["query"] for t in panel["targets"]]
    return out
