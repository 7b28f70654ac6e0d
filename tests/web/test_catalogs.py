"""The web app's catalogs and vendored files are what the code and the README say."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from cloud.web.catalogs import problems

ROOT = Path(__file__).resolve().parents[2]
VENDORED = [ROOT / "cloud" / "web" / "static" / "vendor", ROOT / "tests" / "web" / "vendor"]


def test_every_message_is_translated_and_compiled() -> None:
    assert problems() == []


@pytest.mark.parametrize("vendor", VENDORED, ids=["static", "tests"])
def test_vendored_files_match_the_hashes_recorded_in_their_readme(vendor: Path) -> None:
    readme = (vendor / "README.md").read_text(encoding="utf-8")
    recorded = dict(re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", readme, re.M))
    assert recorded, "the vendor README records no file"
    for name, digest in recorded.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    shipped = {p.name for p in vendor.iterdir() if p.suffix == ".js"}
    assert shipped == set(recorded)
