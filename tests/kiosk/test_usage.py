"""Usage counts per period (kiosk.usage): what leaves the kiosk, when, and what is suppressed."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kiosk.session import SessionUsage
from kiosk.usage import TIERS, UsageCounter, UsageError, suppress
from protocol.messages import Reading

#: 10:20 UTC on 2026-09-21; its hour began at 10:00.
T0 = 1_790_000_000 - 1_790_000_000 % 3600 + 20 * 60
HOUR_START = datetime.fromtimestamp(T0 - 20 * 60, UTC)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _counter(clock: Clock, **kwargs: Any) -> UsageCounter:
    counter = UsageCounter(period_s=3600, k=5, clock=clock, **kwargs)
    counter.declare("language", ["ja", "ja-easy", "en", "zh-Hans", "ko", "vi"])
    counter.declare("info_category", ["health", "debt", "violence_support"])
    return counter


def _cells(readings: list[Reading]) -> dict[tuple[str, str], dict[str, Any]]:
    cells = {(r.tags["dimension"], r.tags["value"]): dict(r.fields) for r in readings}
    assert len(cells) == len(readings), "one reading per cell"
    return cells


def test_one_sessions_period_shows_every_value_of_every_dimension_as_less_than_k() -> None:
    clock = Clock()
    counter = _counter(clock)
    counter.add(
        SessionUsage(
            language="vi",
            tier="red",
            consult_requested=True,
            info_categories=frozenset({"violence_support", "debt"}),
            large_text=True,
        )
    )
    assert counter.closed() == [], "nothing before the period ends"
    clock.now += 3600
    readings = counter.closed()
    assert {r.m for r in readings} == {"kiosk_usage"}
    assert {r.at for r in readings} == {HOUR_START}
    cells = _cells(readings)
    # The resident's language, tier and categories look exactly like every other value.
    assert set(cells) == {
        ("sessions", "all"),
        *(("language", c) for c in ["ja", "ja-easy", "en", "zh-Hans", "ko", "vi", "none"]),
        *(("tier", t) for t in TIERS),
        ("consultation", "requested"),
        *(("info_category", c) for c in ["health", "debt", "violence_support"]),
        ("display", "large_text"),
        ("display", "high_contrast"),
    }
    assert all(fields == {"count_text": "<5"} for fields in cells.values()), cells
    assert counter.closed() == [], "a period is handed out once"


def test_counts_of_k_or_more_are_sent_exact_as_text_and_as_an_integer() -> None:
    clock = Clock()
    counter = _counter(clock)
    for n in range(12):
        counter.add(SessionUsage(language="ja" if n < 7 else "en", tier="green"))
    clock.now += 3600
    cells = _cells(counter.closed())
    assert cells[("sessions", "all")] == {"count_text": "12", "count": 12}
    assert cells[("language", "ja")] == {"count_text": "7", "count": 7}
    assert cells[("language", "en")] == {"count_text": "5", "count": 5}
    assert cells[("tier", "green")] == {"count_text": "12", "count": 12}
    assert cells[("language", "vi")] == {"count_text": "<5"}
    # InfluxDB 1.x keeps one type per field: count_text always a string, count always an int.
    assert all(isinstance(f["count_text"], str) for f in cells.values())
    assert all(type(f["count"]) is int for f in cells.values() if "count" in f)


def test_sessions_are_counted_in_the_period_they_finished_in() -> None:
    clock = Clock()
    counter = _counter(clock)
    for _ in range(5):
        counter.add(SessionUsage(language="ja"))
    clock.now += 3600
    for _ in range(6):
        counter.add(SessionUsage(language="ko"))
    clock.now += 3600
    readings = counter.closed()
    by_period: dict[datetime, dict[tuple[str, str], Any]] = {}
    for r in readings:
        by_period.setdefault(r.at, {})[(r.tags["dimension"], r.tags["value"])] = r.fields
    first, second = sorted(by_period)
    assert (second - first).total_seconds() == 3600
    assert by_period[first][("language", "ja")]["count_text"] == "5"
    assert by_period[first][("language", "ko")]["count_text"] == "<5"
    assert by_period[second][("language", "ko")]["count_text"] == "6"


def test_a_suppressed_language_that_subtraction_would_give_away_hides_another_cell() -> None:
    clock = Clock()
    counter = UsageCounter(period_s=3600, k=5, clock=clock)
    counter.declare("language", ["ja", "vi"])
    # 16 sessions: ja 8, vi 4, none 4. Shown as 8, <5, <5 the two small ones would add up to
    # 8, so each would have to be 4: both residents' cells given away.
    for language in ["ja"] * 8 + ["vi"] * 4 + [None] * 4:
        counter.add(SessionUsage(language=language))
    clock.now += 3600
    cells = _cells(counter.closed())
    assert cells[("sessions", "all")] == {"count_text": "16", "count": 16}
    assert cells[("language", "ja")] == {"count_text": ">=5"}
    assert cells[("language", "vi")] == {"count_text": "<5"}
    assert cells[("language", "none")] == {"count_text": "<5"}


def test_a_dimension_that_cannot_be_shown_safely_is_left_out_of_the_period() -> None:
    clock = Clock()
    counter = UsageCounter(period_s=3600, k=5, clock=clock)
    counter.declare("language", ["vi"])
    # 8 sessions, vi 4 and none 4: every cell small, and together they must hold 8.
    for language in ["vi"] * 4 + [None] * 4:
        counter.add(SessionUsage(language=language))
    clock.now += 3600
    cells = _cells(counter.closed())
    assert cells[("sessions", "all")] == {"count_text": "8", "count": 8}
    assert not [c for c in cells if c[0] == "language"]
    assert cells[("tier", "red")] == {"count_text": "<5"}, "the other dimensions are there"


def test_published_consultations_protect_the_tiers_they_imply() -> None:
    # 13 consultations, each after a finished interview: the tiers hold at least 13. Shown as
    # four "<5" cells (at most 16), each would have to hold at least one.
    cells = suppress({"red": 4, "yellow": 4, "green": 4, "white": 1}, k=5, sum_at_least=13)
    assert cells is None
    cells = suppress({"red": 1, "yellow": 0, "green": 0, "white": 0}, k=5, sum_at_least=0)
    assert cells == dict.fromkeys(["red", "yellow", "green", "white"], ("<5", None))
    clock = Clock()
    counter = _counter(clock)
    for tier in ["red"] * 4 + ["yellow"] * 4 + ["green"] * 4 + ["white"]:
        counter.add(SessionUsage(language="ja", tier=tier, consult_requested=True))
    clock.now += 3600
    cells_sent = _cells(counter.closed())
    assert cells_sent[("consultation", "requested")] == {"count_text": "13", "count": 13}
    assert not [c for c in cells_sent if c[0] == "tier"]


def test_suppress_leaves_every_small_cell_possibly_empty() -> None:
    # Brute force over small tables: whatever is shown, each "<k" cell could still be 0.
    k = 3
    for a in range(7):
        for b in range(7):
            for c in range(7):
                counts = {"a": a, "b": b, "c": c}
                total = a + b + c
                shown = suppress(counts, k=k, sum_at_least=total if total >= k else 0)
                if shown is None:
                    continue
                for value, (text, _exact) in shown.items():
                    if text != f"<{k}":
                        continue
                    assert _could_be_zero(value, shown, total if total >= k else None, k), (
                        counts,
                        shown,
                    )


def _could_be_zero(
    value: str, shown: dict[str, tuple[str, int | None]], total: int | None, k: int
) -> bool:
    """Whether a table with ``value`` at 0 matches everything shown (and the total, if shown)."""
    if total is None:
        return True
    fixed = sum(exact for _t, exact in shown.values() if exact is not None)
    others = [text for v, (text, exact) in shown.items() if exact is None and v != value]
    low = sum(k if t == f">={k}" else 0 for t in others)
    high = sum(10**6 if t == f">={k}" else k - 1 for t in others)
    return low <= total - fixed <= high


def test_a_clean_stop_saves_the_open_period_privately_and_a_start_in_it_resumes(
    tmp_path: Path,
) -> None:
    clock = Clock()
    state = tmp_path / "kiosk-usage.json"
    first = _counter(clock, state_path=state)
    for _ in range(3):
        first.add(SessionUsage(language="en", tier="white"))
    first.save()
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    saved = json.loads(state.read_text())
    assert saved["periods"][0]["start"] == T0 - 20 * 60

    clock.now += 600
    second = _counter(clock, state_path=state)
    assert second.restore() == 1
    assert not state.exists()
    for _ in range(2):
        second.add(SessionUsage(language="en", tier="white"))
    assert second.closed() == []
    clock.now += 3600
    cells = _cells(second.closed())
    assert cells[("sessions", "all")] == {"count_text": "5", "count": 5}
    assert cells[("tier", "white")] == {"count_text": "5", "count": 5}


def test_a_saved_period_that_ended_before_the_start_is_sent_with_its_own_start(
    tmp_path: Path,
) -> None:
    clock = Clock()
    state = tmp_path / "kiosk-usage.json"
    first = _counter(clock, state_path=state)
    first.add(SessionUsage(language="ko"))
    first.save()
    clock.now += 3 * 3600
    second = _counter(clock, state_path=state)
    second.restore()
    readings = second.closed()
    assert {r.at for r in readings} == {HOUR_START}
    assert _cells(readings)[("sessions", "all")] == {"count_text": "<5"}
    assert second.closed() == []


def test_a_stop_with_nothing_counted_leaves_no_file(tmp_path: Path) -> None:
    state = tmp_path / "kiosk-usage.json"
    state.write_text("{}")
    _counter(Clock(), state_path=state).save()
    assert not state.exists()


def test_an_unreadable_saved_state_is_dropped_and_the_counter_starts_empty(
    tmp_path: Path,
) -> None:
    state = tmp_path / "kiosk-usage.json"
    state.write_text('{"v": 1, "periods": [{"start": "soon"}]}')
    clock = Clock()
    counter = _counter(clock, state_path=state)
    assert counter.restore() == 0
    assert not state.exists()
    clock.now += 3600
    assert _cells(counter.closed())[("sessions", "all")] == {"count_text": "<5"}


def test_a_period_that_does_not_divide_a_day_or_a_k_below_2_is_refused() -> None:
    with pytest.raises(UsageError, match="divide a day"):
        UsageCounter(period_s=7 * 60)
    with pytest.raises(UsageError, match="usage_min_count"):
        UsageCounter(k=1)


def test_the_kiosk_config_names_a_bad_usage_period() -> None:
    from edge.config import KioskSection

    assert KioskSection().usage_period_s == 3600
    assert KioskSection().usage_min_count == 5
    with pytest.raises(ValueError, match="usage_period_s"):
        KioskSection(usage_period_s=7 * 60)
