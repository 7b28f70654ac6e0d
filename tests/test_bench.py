"""`make bench` keeps working: each benchmark runs end to end at a tiny size.

Nothing here judges a figure: timing depends on the machine. The tests pin that every
benchmark still starts its services, measures, and returns rows the table can show.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bench import bench_agent, bench_drain
from bench.__main__ import run_benchmarks, target_met
from bench.common import Row
from bench.errors import BenchError
from bench.harness import Report

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_drain_bench_drains_a_small_backlog_and_measures_the_bare_publisher() -> None:
    stages: list[str] = []
    rows = bench_drain.run(readings=500, report=stages.append)
    assert len(rows) == 1
    row = rows[0]
    assert "drain" in row.name
    assert row.ours > 0
    assert row.reference is not None
    assert row.reference > 0
    assert row.higher_is_better
    assert "5,000/s" in row.target, "the node's backlog_rate is reported beside the rate"
    assert target_met(row) is not None
    assert any("offline" in s for s in stages)


@pytest.mark.integration
def test_agent_bench_measures_node_and_bare_publisher_side_by_side() -> None:
    rows = bench_agent.run(warmup_s=0.5, window_s=1.0)
    by_name = {row.name.split(" at ")[0]: row for row in rows}
    assert set(by_name) == {"agent RSS (MB), peak", "agent RSS (MB), mean", "agent CPU (%)"}
    peak = by_name["agent RSS (MB), peak"]
    assert peak.ours > 1
    assert peak.reference is not None
    assert peak.reference > 1
    assert not peak.higher_is_better
    assert target_met(peak) is not None, "the peak RSS row carries the <= 60 MB target"
    cpu = by_name["agent CPU (%)"]
    assert cpu.ours >= 0
    assert cpu.reference is not None
    assert cpu.reference >= 0


def test_runner_prints_every_row_and_writes_json_even_when_one_benchmark_fails(
    tmp_path: Path,
) -> None:
    def fine(report: Report) -> list[Row]:
        report("measuring")
        return [Row(name="widgets/s", ours=300.0, unit="w/s", reference=100.0, target=">= 200")]

    def broken(report: Report) -> list[Row]:
        raise BenchError("the broker never came up")

    out = io.StringIO()
    results = tmp_path / "latest.json"
    status = run_benchmarks(
        {"fine": fine, "broken": broken},
        console=Console(file=out, width=200),
        results=results,
    )
    assert status == 1
    printed = out.getvalue()
    assert "widgets/s" in printed
    assert "3.00x" in printed
    assert "broken failed" in printed
    assert "the broker never came up" in printed
    data = json.loads(results.read_text())
    assert data["rows"][0]["name"] == "widgets/s"
    assert data["rows"][0]["ratio"] == 3.0
    assert data["rows"][0]["target_met"] is True
    assert data["failures"] == {"broken": "the broker never came up"}
    assert data["machine"]["cpu_count"] >= 1
    assert data["machine"]["python"].startswith("3.")


@pytest.mark.parametrize(
    ("ours", "target", "met"),
    [
        (2500.0, ">= 2,000/s (node paces a backlog at 5,000/s)", True),
        (1999.0, ">= 2,000/s", False),
        (48.5, "<= 60 MB", True),
        (60.5, "<= 60 MB", False),
        (1.0, "", None),
        (1.0, "about right", None),
    ],
)
def test_target_is_read_from_the_rows_target_text(
    ours: float, target: str, met: bool | None
) -> None:
    assert target_met(Row(name="x", ours=ours, unit="", target=target)) is met


def test_bench_command_runs_only_the_chosen_benchmark(tmp_path: Path) -> None:
    results = tmp_path / "latest.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "outbox", "--results", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    names = [row["name"] for row in json.loads(results.read_text())["rows"]]
    assert names == ["outbox appends/s"]
