"""The web benchmark runs end to end at a tiny size: a real influxd, two days of the fleet, the
app served by uvicorn, every page and API answer timed beside its raw queries."""

from __future__ import annotations

import pytest

from bench import bench_web
from bench.web_fleet import lines, manifest, nodes, now_hour


def test_the_benchmark_fleet_is_thirty_nodes_at_about_ten_million_points_a_year() -> None:
    assert len(nodes()) == 30
    assert "[[nodes]]" in manifest()
    day = next(iter(lines(now_hour(), days=1)))
    assert 9_000_000 < len(day) * 365 < 12_000_000


@pytest.mark.integration
def test_web_bench_times_every_page_and_api_answer() -> None:
    stages: list[str] = []
    rows = bench_web.run(days=2, repeat=3, report=stages.append)
    timed = [r for r in rows if r.name.startswith("web p95")]
    assert len(timed) == 14
    assert all(r.ours > 0 for r in timed)
    with_reference = [r for r in timed if r.reference is not None]
    assert len(with_reference) >= 12
    assert any("rollups" in s for s in stages)
