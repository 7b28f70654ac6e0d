"""The checked-in JSON Schema files match the models, and say what the models enforce."""

from __future__ import annotations

import json

import jsonschema
import pytest

from protocol.schema import MODELS, SCHEMA_DIR, render


@pytest.mark.parametrize("name", sorted(MODELS))
def test_schema_file_is_current(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.schema.json"
    assert path.read_text(encoding="utf-8") == render(name), (
        f"{path} is stale: run `python -m protocol.schema`"
    )


def test_schema_rejects_what_the_model_rejects() -> None:
    schema = json.loads((SCHEMA_DIR / "envelope.schema.json").read_text())
    good = {
        "v": 1,
        "node": "rr-01",
        "stream": "0123456789abcdef",
        "seq": 1,
        "sent_at": "2026-11-26T07:00:00.000000Z",
        "readings": [{"m": "visit", "at": "2026-11-26T07:00:00.000000Z", "fields": {"d": 1.0}}],
    }
    jsonschema.validate(good, schema)
    for bad in (
        {**good, "node": "RR/01"},
        {**good, "seq": 0},
        {**good, "readings": []},
        {**good, "readings": [{"m": "visit", "at": "x", "fields": {"bad key": 1}}]},
        {**good, "readings": [{"m": "visit", "at": "x", "fields": {}}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


@pytest.mark.parametrize(
    "reading",
    [
        {"m": "link"},
        {"m": "fleet_state"},
        {"tags": {"kind": "restroom"}},
        {"tags": {"stream": "0123456789abcdef"}},
        {"tags": {"node": "rr-02"}},
        {"fields": {"time": 1}},
    ],
)
def test_schema_refuses_the_names_the_cloud_reserves(reading: dict[str, object]) -> None:
    schema = json.loads((SCHEMA_DIR / "envelope.schema.json").read_text())
    base = {"m": "visit", "at": "2026-11-26T07:00:00.000000Z", "fields": {"d": 1.0}}
    doc = {
        "v": 1,
        "node": "rr-01",
        "stream": "0123456789abcdef",
        "seq": 1,
        "sent_at": "2026-11-26T07:00:00.000000Z",
        "readings": [{**base, **reading}],
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
