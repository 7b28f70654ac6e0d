"""``machikado kiosk check-pack PATH``: every reason a content pack would be refused, exit 2;
the shipped packs pass, exit 0. Run as the real command, through the root ``machikado``."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kiosk.content.pack import MAX_DEPTH, MAX_PACK_BYTES
from tests.kiosk.conftest import TEST_PACK

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "kiosk" / "data" / "content").glob("*.yaml"))
assert SHIPPED, "the shipped sample pack is missing"


def check_pack(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "machikado.cli", "kiosk", "check-pack", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _pack() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(TEST_PACK)
    return data


def _write(tmp_path: Path, data: dict[str, Any] | str | bytes, name: str = "pack.json") -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_packs_are_accepted(path: Path) -> None:
    done = check_pack(path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{path}: ok: " in done.stdout
    assert "ja, ja-easy, en, zh-Hans, ko, vi" in done.stdout


def test_a_pack_missing_a_language_the_kiosk_offers_is_refused(tmp_path: Path) -> None:
    data = _pack()
    data["languages"].remove("vi")
    done = check_pack(_write(tmp_path, data))
    assert done.returncode == 2
    assert "languages: the kiosk offers vi too" in done.stdout


def test_a_link_too_long_for_the_qr_code_is_refused(tmp_path: Path) -> None:
    data = _pack()
    data["items"][1]["link"] = "https://example.org/" + "a" * 400
    done = check_pack(_write(tmp_path, data))
    assert done.returncode == 2
    assert "items[1].link:" in done.stdout
    assert "cannot be shown as a QR code" in done.stdout


@pytest.mark.parametrize(
    "link", ["javascript:alert(document.cookie)", "JavaScript:alert(1)", "data:text/html,<b>x</b>"]
)
def test_a_javascript_or_data_link_is_refused(tmp_path: Path, link: str) -> None:
    data = _pack()
    data["items"][0]["link"] = link
    done = check_pack(_write(tmp_path, data))
    assert done.returncode == 2
    assert "items[0].link:" in done.stdout
    assert "the scheme must be https:, tel: or mailto:" in done.stdout


def test_deeply_nested_json_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    # Deep enough that Python's JSON parser itself would raise RecursionError.
    depth = 100_000
    text = TEST_PACK[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}"
    done = check_pack(_write(tmp_path, text))
    assert done.returncode == 2
    assert f"nested deeper than {MAX_DEPTH} levels" in done.stdout
    assert "RecursionError" not in done.stderr


def test_deeply_nested_yaml_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    data = yaml.safe_dump(_pack(), allow_unicode=True) + "extra: " + "[" * 900 + "]" * 900 + "\n"
    done = check_pack(_write(tmp_path, data, "pack.yaml"))
    assert done.returncode == 2
    assert f"nested deeper than {MAX_DEPTH} levels" in done.stdout


def test_a_10_mb_pack_is_refused_unread(tmp_path: Path) -> None:
    padding = "#" + " " * 99 + "\n"
    text = padding * (10 * 1024 * 1024 // len(padding)) + yaml.safe_dump(_pack())
    done = check_pack(_write(tmp_path, text, "pack.yaml"))
    assert done.returncode == 2
    assert f"more than {MAX_PACK_BYTES}" in done.stdout


def test_yaml_aliases_are_refused(tmp_path: Path) -> None:
    # The "billion laughs": each alias doubles what a walk over the data has to visit.
    bomb = "a: &a [x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9)
    )
    done = check_pack(_write(tmp_path, yaml.safe_dump(_pack()) + bomb, "pack.yaml"))
    assert done.returncode == 2
    assert "uses a YAML alias" in done.stdout


def test_every_reason_is_printed_not_just_the_first(tmp_path: Path) -> None:
    data = copy.deepcopy(_pack())
    data["languages"].remove("ko")
    data["items"][0]["link"] = "javascript:alert(1)"
    data["items"][1]["link"] = "http://example.org/plain"
    data["items"][2]["title"]["en"] = "x" * 1000
    data["who"]["Bad Tag!"] = data["who"]["elderly"]
    done = check_pack(_write(tmp_path, data))
    assert done.returncode == 2
    lines = done.stdout.splitlines()
    for expected in [
        "languages: the kiosk offers ko too",
        "items[0].link: 'javascript:alert(1)'",
        "items[1].link: 'http://example.org/plain': http: is not encrypted; use https:",
        "items[2].title: 1000 characters in 'en', more than 200",
        "who: tag 'Bad Tag!' must match",
    ]:
        assert any(expected in line for line in lines), (expected, lines)
    assert "refused, 5 reasons" in done.stderr


def test_a_missing_file_is_a_clear_refusal(tmp_path: Path) -> None:
    done = check_pack(tmp_path / "nowhere.yaml")
    assert done.returncode == 2
    assert "nowhere.yaml: cannot read (No such file or directory)" in done.stdout
