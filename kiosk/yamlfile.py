"""YAML for the kiosk's data files (triage protocol, content packs): safe loading,
through libyaml when PyYAML was built with it, which parses several times faster at start."""

from __future__ import annotations

from typing import Any

import yaml

#: libyaml's safe loader if present, else PyYAML's own; both accept the same documents.
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """The data of one YAML document (only plain types: no tags that build objects)."""
    return yaml.load(text, Loader=SAFE_LOADER)
