"""``machikado kiosk snapshot``: every screen in every language and variant, as PNG files."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

from kiosk.i18n import Catalog

ROOT = Path(__file__).resolve().parents[2]
SCREENS = [
    "attract",
    "language",
    "home",
    "triage",
    "emergency",
    "result",
    "doctor",
    "doctor_waiting",
    "doctor_reply",
    "doctor_expired",
    "wizard",
    "info",
    "idle",
]
VARIANTS = ["", "-large", "-contrast", "-large-contrast"]


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_snapshot_renders_every_screen_in_every_language_and_variant(tmp_path: Path) -> None:
    out = tmp_path / "shots"
    proc = subprocess.run(
        [sys.executable, "-c", "from kiosk.cli import app; app()", "snapshot", "--out", str(out)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    languages = [lang.code for lang in Catalog.load().languages]
    expected = {
        f"{screen}-{lang}{variant}.png"
        for screen in SCREENS
        for lang in languages
        for variant in VARIANTS
    }
    written = {p.name for p in out.iterdir()}
    assert written == expected
    for name in expected:
        assert _png_size(out / name) == (1280, 800), name
