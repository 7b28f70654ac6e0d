"""The offscreen kiosk and a content pack that fails on screen although it passed its checks:
the kiosk stays up, goes back to the last good pack, and says so to staff.

The packs here are ones the checks refuse now (a language missing, a link too long for a QR
code); the scenario opens a gap in the checks on purpose, as the checks before this guard had,
to show what the guard does when a check misses something.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.kiosk.conftest import TEST_PACK, Kiosk
from tests.kiosk.test_app_flows import _start_in


def _without_vi(revision: str) -> bytes:
    pack = json.loads(TEST_PACK)
    pack["revision"] = revision
    pack["languages"].remove("vi")

    def drop(texts: dict[str, str]) -> None:
        texts.pop("vi", None)

    for table in (pack["who"], pack["what"]):
        for labels in table.values():
            drop(labels)
    for item in pack["items"]:
        drop(item["title"])
        drop(item["body"])
    return json.dumps(pack, ensure_ascii=False).encode()


def _long_link(revision: str) -> bytes:
    pack = json.loads(TEST_PACK)
    pack["revision"] = revision
    pack["items"][0]["link"] = "https://example.org/" + "a" * 400
    return json.dumps(pack, ensure_ascii=False).encode()


def _show_health_info(k: Kiosk) -> None:
    k.app.go("home")
    k.tap_id("home", "info")
    k.wait_for_screen("wizard")
    if k.widget("wizard", "what_health").state != "down":
        k.tap_id("wizard", "what_health")
    k.tap_id("wizard", "show")
    k.wait_for_screen("info")


def scenario_a_pack_that_fails_on_screen_is_taken_back(k: Kiosk) -> None:
    import kiosk.content.pack as pack_module

    good = k.app.content.pack
    _start_in(k, "vi")
    _show_health_info(k)
    shown = k.texts()
    assert any("Tiêm phòng cúm" in t for t in shown), shown

    checks = pack_module.validate_pack
    pack_module.validate_pack = lambda data, **_kw: []  # the gap
    try:
        # 1. No Vietnamese in it, while a resident reads in Vietnamese.
        no_vi = _without_vi("no-vi")
        assert k.app.offer_content_pack(no_vi, source="mqtt") == [], "let through by the gap"
        k.driver.wait_until(lambda: k.app.pack_refusal is not None)
        assert k.app.content.pack is good
        source, reasons = k.app.pack_refusal
        assert source == "screen"
        assert "no-vi" in reasons[0]
        assert any("Tiêm phòng cúm" in t for t in k.texts()), "the info screen shows the good pack"
        # Offered again (a retained pack comes at every reconnect): refused at once.
        assert k.app.offer_content_pack(no_vi, source="mqtt") != []
        assert k.app.content.pack is good

        # 2. A link no QR code can hold.
        assert k.app.offer_content_pack(_long_link("long-link"), source="mqtt") == []
        k.driver.wait_until(lambda: "long-link" in k.app.pack_refusal[1][0])
        assert k.app.content.pack is good
    finally:
        pack_module.validate_pack = checks

    # The kiosk is still up and working for the resident.
    _show_health_info(k)
    assert k.app.screen("info").count == 2
    assert k.app.screen("info").ids["qr_0"].modules > 20
    k.driver.screenshot(Path(k.params["shots"]) / "info_after_rollback.png")
    k.tap(k.bar("finish"))
    k.wait_for_screen("attract")


def test_a_pack_that_fails_on_screen_leaves_the_kiosk_up_with_the_last_good_pack(
    run_scenario: Any, tmp_path: Path
) -> None:
    shots = tmp_path / "shots"
    proc = run_scenario(
        "tests.kiosk.test_app_content:scenario_a_pack_that_fails_on_screen_is_taken_back",
        params={"shots": str(shots)},
    )
    log = proc.stdout + proc.stderr
    assert log.count("screen_refresh_failed") >= 2
    assert "content_pack_rolled_back" in log
    assert (shots / "info_after_rollback.png").stat().st_size > 10_000
