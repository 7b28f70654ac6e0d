"""The kiosk session (wiped to nothing) and the idle timer (active -> warning -> expired)."""

from __future__ import annotations

import pytest

from kiosk.errors import KioskError
from kiosk.session import IdleState, IdleTimer, KioskSession, SessionUsage
from kiosk.triage import Tier, TriageProtocol


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def protocol() -> TriageProtocol:
    return TriageProtocol.load()


def _used_session(clock: FakeClock, protocol: TriageProtocol) -> KioskSession:
    session = KioskSession(clock=clock)
    session.visit("language")
    session.language = "vi"
    session.large_text = True
    session.high_contrast = True
    session.more_time = True
    session.visit("home")
    triage = session.start_triage(protocol)
    for option in ["none", "none", "adult", "chest_pain", "no", "yes"]:
        triage.answer(option)
    session.note_outcome()
    session.consult_requested = True
    session.ticket = {"number": "A-017", "code": "493-221"}
    session.reply = "Please see a doctor today."
    session.set_scroll("results", 0.42)
    session.wizard_who = {"foreign_resident"}
    session.wizard_what = {"health", "procedures"}
    session.view_info({"health", "procedures"}, "multilingual-desk")
    session.extra_note = "a screen stored something on the side"  # type: ignore[attr-defined]
    return session


def test_a_used_session_differs_from_a_fresh_one_in_every_field(protocol):
    clock = FakeClock()
    fresh = vars(KioskSession(clock=clock))
    used = vars(_used_session(clock, protocol))
    # Guards the wipe test: a field added later but not set here would otherwise go unchecked.
    unchanged = [k for k in fresh if k != "_clock" and used[k] == fresh[k]]
    assert unchanged == []


def test_wipe_leaves_nothing_of_the_previous_resident(protocol):
    clock = FakeClock()
    session = _used_session(clock, protocol)
    triage, ticket, scroll, who = session.triage, session.ticket, session.scroll, session.wizard_who
    session.wipe()
    assert vars(session) == vars(KioskSession(clock=clock))
    assert session.is_fresh
    assert session.triage is None
    assert session.ticket is None
    assert session.reply is None
    assert not hasattr(session, "extra_note")
    # The old containers are not reused: nothing held elsewhere leaks back into the session.
    assert session.scroll is not scroll
    assert session.wizard_who is not who
    scroll["results"] = 1.0
    assert session.scroll == {}
    assert triage is not None
    assert ticket is not None


def test_a_fresh_session_has_not_started():
    session = KioskSession(clock=FakeClock())
    assert session.is_fresh
    assert not session.started
    assert session.duration_s() == 0.0


def test_the_usage_of_a_session_holds_only_what_the_counts_need(protocol):
    clock = FakeClock(1000.0)
    session = _used_session(clock, protocol)
    clock.now = 1093.25
    usage = session.usage()
    assert usage == SessionUsage(
        language="vi",
        tier="yellow",
        consult_requested=True,
        info_categories=frozenset({"health", "procedures"}),
        large_text=True,
        high_contrast=True,
    )
    text = repr(usage)
    for secret in ["chest_pain", "A-017", "493-221", "doctor today", "adult", "foreign_resident"]:
        assert secret not in text
    for per_session in ["93.25", "1093", "language>home", "home"]:
        assert per_session not in text, "no time, duration or screen path"


def test_the_usage_keeps_the_most_urgent_tier_of_several_interviews(protocol):
    session = KioskSession(clock=FakeClock())
    first = session.start_triage(protocol)
    first.answer("bleeding")
    assert session.note_outcome() is Tier.RED
    second = session.start_triage(protocol)
    for option in ["none", "none", "adult", "rash", "no", "no", "no"]:
        second.answer(option)
    assert session.usage().tier == "red"


# --- Idle timer -------------------------------------------------------------------------------


def test_idle_goes_from_active_to_a_countdown_to_expired():
    clock = FakeClock(0.0)
    idle = IdleTimer(90, 30, clock=clock)
    assert idle.state() == IdleState("active", 120)
    clock.now = 89.9
    assert idle.state().is_active
    clock.now = 90.0
    assert idle.state() == IdleState("warning", 30)
    clock.now = 110.5
    assert idle.state() == IdleState("warning", 10)
    clock.now = 119.9
    assert idle.state() == IdleState("warning", 1)
    clock.now = 120.0
    assert idle.state().is_expired
    assert idle.state().seconds_left == 0


def test_a_touch_during_the_warning_starts_the_idle_period_again():
    clock = FakeClock(0.0)
    idle = IdleTimer(90, 30, clock=clock)
    clock.now = 100.0
    assert idle.state().is_warning
    idle.touch()
    assert idle.state().is_active
    assert idle.state(now=100.0 + 90.0).is_warning


def test_asking_for_more_time_lengthens_every_idle_period_until_reset():
    clock = FakeClock(0.0)
    idle = IdleTimer(90, 30, clock=clock)
    clock.now = 95.0
    idle.more_time()
    assert idle.extended
    assert idle.current_idle_s == 180
    assert idle.state(now=95.0 + 179.0).is_active
    idle.touch(now=300.0)
    assert idle.state(now=300.0 + 179.0).is_active
    assert idle.state(now=300.0 + 180.0).is_warning
    idle.reset(now=500.0)
    assert idle.current_idle_s == 90
    assert idle.state(now=500.0 + 90.0).is_warning


def test_an_idle_timer_with_nonsense_durations_is_refused():
    with pytest.raises(KioskError, match="idle_s must be more than 0"):
        IdleTimer(0, 30)
    with pytest.raises(KioskError, match="warning_s must be more than 0"):
        IdleTimer(90, -1)
