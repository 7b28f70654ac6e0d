"""JSON Schema files of the wire contract, generated from the models and checked in.

``python -m protocol.schema`` rewrites ``protocol/schemas/*.schema.json``; a test fails when a
model changed and the files were not regenerated. Other implementations (firmware in C, a
collector in another language) validate against these files.

The schemas describe shape and syntax. A few rules need the receiver's context and are only in
:func:`protocol.parse_envelope`: the accepted clock skew, and that topic and payload name the
same node.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from protocol.messages import Birth, Envelope, Receipt

SCHEMA_DIR = Path(__file__).with_name("schemas")
MODELS: dict[str, type[BaseModel]] = {"envelope": Envelope, "birth": Birth, "receipt": Receipt}


def _close_maps(node: Any) -> None:
    # pydantic writes dict[Key, V] as patternProperties alone, which lets any other key through.
    if isinstance(node, dict):
        if "patternProperties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _close_maps(value)
    elif isinstance(node, list):
        for value in node:
            _close_maps(value)


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    _close_maps(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:machikado:v1:{model.__name__.lower()}"
    return schema


def render(name: str) -> str:
    return json.dumps(schema_of(MODELS[name]), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_all(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(exist_ok=True)
    written = []
    for name in MODELS:
        path = directory / f"{name}.schema.json"
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all():
        print(p, file=sys.stderr)
