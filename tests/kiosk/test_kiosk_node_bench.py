"""The kiosk start benchmark measures the real kiosk and the bare Kivy app (one run each)."""

from __future__ import annotations

from bench import bench_kiosk
from bench.__main__ import BENCHMARKS


def test_kiosk_bench_reports_start_time_and_rss_beside_the_bare_kivy_app() -> None:
    stages: list[str] = []
    start, rss = bench_kiosk.run(runs=1, report=stages.append)
    assert stages == ["run 1 of 1: bare Kivy app", "run 1 of 1: kiosk"]
    assert start.unit == "s"
    assert rss.unit == "MB"
    assert start.reference is not None
    assert rss.reference is not None
    assert 0 < start.reference < 120
    assert 0 < start.ours < 120
    # Both are whole Kivy processes with a window: tens of MB at least.
    assert rss.reference > 20
    assert rss.ours > 20
    assert start.target.startswith("<= ")
    assert rss.target.startswith("<= ")
    assert "kiosk" in BENCHMARKS
