"""Idle countdown, wipe, and a bad content pack, in the real app offscreen."""

from __future__ import annotations

from typing import Any

from tests.kiosk.conftest import Kiosk


def scenario_idle_countdown_then_wipe(k: Kiosk) -> None:
    k.wait_for_screen("attract")
    k.tap(k.app.screen("attract"))
    k.wait_for_screen("language")
    k.tap_id("language", "lang_ko")
    k.wait_for_screen("home")
    k.tap(k.bar("larger"))
    k.tap(k.bar("contrast"))
    k.tap_id("home", "consult")
    k.wait_for_screen("triage")
    first = k.app.session.triage.current
    none = next(o for o in first.options if o.tier is None)
    k.tap_id("triage", f"opt_{none.id}")
    k.driver.wait_until(lambda: k.app.session.triage.answers)
    asked = k.app.screen("triage").question_text
    k.app.screen("triage").ids.scroll.scroll_y = 0.3

    # Idle: the countdown shows, "more time" gives it back.
    k.clock.advance(95)
    k.driver.wait_until(lambda: k.app.warning)
    overlay = k.app.root.ids.overlay
    k.driver.wait_until(lambda: "25" in overlay.ids.countdown.text)
    k.tap(overlay.ids.more_time)
    k.driver.wait_until(lambda: not k.app.warning)
    assert k.app.manager.current == "triage"

    # Idle again, and nobody comes back: everything is wiped.
    k.clock.advance(2 * 90 + 1)
    k.driver.wait_until(lambda: k.app.warning)
    k.clock.advance(31)
    k.wait_for_screen("attract")
    assert not k.app.warning
    assert k.app.session.is_fresh
    assert (k.app.lang, k.app.large, k.app.contrast) == ("ja", False, False)
    assert k.app.font == str(k.app.settings.font_cjk)
    assert k.app.screen("triage").ids.scroll.scroll_y == 1
    assert k.node.wipes == 1
    (usage,) = k.node.sessions
    assert usage.language == "ko"
    assert usage.large_text is True
    shown = [t for name in k.app.manager.screen_names for t in k.app.screen(name).texts()]
    assert not any(asked in t for t in shown), "the last question must not stay on any screen"


def test_idle_shows_a_countdown_more_time_then_wipes_everything(run_scenario: Any) -> None:
    run_scenario("tests.kiosk.test_app_idle:scenario_idle_countdown_then_wipe")


def scenario_bad_content_pack_is_refused(k: Kiosk) -> None:
    k.wait_for_screen("attract")
    before = k.app.content.pack
    reasons = k.app.offer_content_pack(b"format: machikado-content\nversion: 1\nid: broken\n")
    assert reasons, "a broken pack is refused with reasons"
    assert k.app.content.pack is before
    k.tap(k.app.screen("attract"))
    k.wait_for_screen("language")
    k.tap_id("language", "lang_en")
    k.tap_id("home", "info")
    k.wait_for_screen("wizard")
    assert k.widget("wizard", "what_health").text == "Health"
    print("REASONS:", "; ".join(reasons))


def test_bad_content_pack_is_refused_old_one_kept_and_logged(run_scenario: Any) -> None:
    proc = run_scenario("tests.kiosk.test_app_idle:scenario_bad_content_pack_is_refused")
    assert "content_pack_refused" in proc.stdout + proc.stderr
    assert "REASONS: " in proc.stdout
