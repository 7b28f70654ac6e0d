"""The real kiosk app, offscreen, tapped through like a resident would.

Each ``scenario_*`` runs in a fresh process (see conftest.py); the ``test_*`` functions start
them. Taps are real touch events dispatched through the window onto the widgets found by id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.kiosk.conftest import Kiosk


def _start_in(k: Kiosk, lang: str) -> None:
    k.wait_for_screen("attract")
    k.tap(k.app.screen("attract"))
    k.wait_for_screen("language")
    k.tap_id("language", f"lang_{lang}")
    k.wait_for_screen("home")


def _green_path(k: Kiosk) -> list[str]:
    from kiosk.triage import Tier, TriageSession, all_paths

    for path in all_paths(k.app.protocol):
        session = TriageSession(k.app.protocol)
        for option in path:
            session.answer(option)
        assert session.outcome is not None
        if session.outcome.tier is Tier.GREEN:
            return path
    raise AssertionError("the protocol has no path to green")


def scenario_red_flag_shows_119(k: Kiosk) -> None:
    _start_in(k, "en")
    assert "Health consultation" in k.widget("home", "consult").text
    k.tap_id("home", "consult")
    k.wait_for_screen("triage")
    first = k.app.session.triage.current
    red = next(o for o in first.options if o.tier is not None and o.tier.value == "red")
    k.tap_id("triage", f"opt_{red.id}")
    k.wait_for_screen("emergency")
    texts = "\n".join(k.texts())
    assert "119" in texts
    assert "Call an ambulance now" in texts


def test_red_flag_goes_straight_to_the_119_screen(run_scenario: Any) -> None:
    run_scenario("tests.kiosk.test_app_flows:scenario_red_flag_shows_119")


def scenario_green_path_doctor_reply(k: Kiosk) -> None:
    _start_in(k, "en")
    k.tap_id("home", "consult")
    k.wait_for_screen("triage")
    for n, option in enumerate(_green_path(k), start=1):
        k.tap_id("triage", f"opt_{option}")
        k.driver.wait_until(lambda n=n: len(k.app.session.triage.answers) == n)
    k.wait_for_screen("result")
    texts = "\n".join(k.texts())
    assert "Green" in texts
    assert "not a diagnosis" in texts
    k.tap_id("result", "ask_doctor")
    k.wait_for_screen("doctor")
    k.tap_id("doctor", "send")
    k.driver.wait_until(lambda: k.app.screen("doctor").phase == "waiting")
    (request,) = k.node.requests
    assert request["tier"] == "green"
    assert request["language"] == "en"
    assert "name" not in request
    ticket = k.node.ticket
    assert any(ticket.number in t for t in k.texts())
    qr = k.widget("doctor", "qr")
    assert qr.data == ticket.qr_payload
    assert qr.modules > 20
    k.clock.advance(65)  # within the idle time: no countdown yet
    k.driver.wait_until(lambda: "1 min 5 s" in k.widget("doctor", "waited").text)
    k.node.reply("Please see your family doctor tomorrow morning.")
    k.driver.wait_until(lambda: k.app.screen("doctor").phase == "replied")
    assert any("family doctor tomorrow" in t for t in k.texts())


def test_green_path_doctor_request_shows_ticket_qr_and_the_reply(run_scenario: Any) -> None:
    run_scenario("tests.kiosk.test_app_flows:scenario_green_path_doctor_reply")


def _send_to_doctor(k: Kiosk, lang: str) -> None:
    _start_in(k, lang)
    k.tap_id("home", "consult")
    k.wait_for_screen("triage")
    for n, option in enumerate(_green_path(k), start=1):
        k.tap_id("triage", f"opt_{option}")
        k.driver.wait_until(lambda n=n: len(k.app.session.triage.answers) == n)
    k.wait_for_screen("result")
    k.tap_id("result", "ask_doctor")
    k.wait_for_screen("doctor")
    k.tap_id("doctor", "send")
    k.driver.wait_until(lambda: k.app.screen("doctor").phase == "waiting")


def scenario_a_request_that_ran_out_says_so_and_can_be_sent_again(k: Kiosk) -> None:
    _send_to_doctor(k, "vi")
    doctor = k.app.screen("doctor")
    first = k.node.ticket
    k.node.expire()
    k.driver.wait_until(lambda: doctor.phase == "expired")
    texts = "\n".join(k.texts())
    assert "Yêu cầu của bạn đã hết hạn" in texts
    assert "30 phút" in texts, "the screen says how long a request may wait"
    # The dead request's ticket and QR code are gone; the app no longer waits for it.
    assert first.number not in texts
    assert k.widget("doctor", "qr").data == ""
    assert k.app.session.ticket is None
    k.driver.screenshot(Path(k.params["shots"]) / "doctor_expired-vi.png")
    k.tap_id("doctor", "send_again")
    k.driver.wait_until(lambda: doctor.phase == "waiting")
    assert len(k.node.requests) == 2
    assert k.node.ticket.number in "\n".join(k.texts())


def test_a_request_that_ran_out_is_shown_as_such_and_can_be_sent_again(
    run_scenario: Any, tmp_path: Path
) -> None:
    shots = tmp_path / "shots"
    run_scenario(
        "tests.kiosk.test_app_flows:scenario_a_request_that_ran_out_says_so_and_can_be_sent_again",
        params={"shots": str(shots)},
    )
    assert (shots / "doctor_expired-vi.png").stat().st_size > 10_000


def scenario_wizard_ranks_items_with_qr(k: Kiosk) -> None:
    _start_in(k, "ja")
    k.tap_id("home", "info")
    k.wait_for_screen("wizard")
    k.tap_id("wizard", "who_parent_small_children")
    k.tap_id("wizard", "what_health")
    k.tap_id("wizard", "show")
    k.wait_for_screen("info")
    info = k.app.screen("info")
    assert info.count == 2
    texts = k.texts()
    first = next(i for i, t in enumerate(texts) if "乳幼児健診" in t)
    second = next(i for i, t in enumerate(texts) if "インフルエンザ" in t)
    assert first < second, "the item for parents of small children ranks first"
    assert not any("粗大ごみ" in t for t in texts), "waste was not asked for"
    assert info.ids["qr_0"].data == "https://example.org/checkups"
    assert info.ids["qr_0"].modules > 20


def test_wizard_shows_ranked_items_with_qr_codes(run_scenario: Any) -> None:
    run_scenario("tests.kiosk.test_app_flows:scenario_wizard_ranks_items_with_qr")


def scenario_language_switch_keeps_the_question(k: Kiosk) -> None:
    _start_in(k, "ja")
    k.tap_id("home", "consult")
    k.wait_for_screen("triage")
    question = k.app.session.triage.current
    k.tap(k.bar("language"))
    k.wait_for_screen("language")
    k.tap_id("language", "lang_vi")
    k.wait_for_screen("triage")
    assert k.app.session.triage.current is question
    assert k.app.screen("triage").question_text == k.app.protocol.text("vi", question.text)
    assert k.app.font == str(k.app.settings.font_latin)
    k.tap(k.bar("larger"))
    k.driver.wait_until(lambda: k.app.large)
    assert all(b.height >= 48 for b in k.app.screen("triage").ids.options.children)


def test_language_switch_mid_question_changes_text_and_font_not_the_answers(
    run_scenario: Any,
) -> None:
    run_scenario("tests.kiosk.test_app_flows:scenario_language_switch_keeps_the_question")
