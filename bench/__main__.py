"""``python -m bench``: the node, kiosk, collector and web benchmarks, ours beside each reference.

Each benchmark runs under a rich progress display; then one table shows every figure, its
reference, the ratio (above 1: ours is better), the target and whether it is met. The rows are
also written as JSON, with facts about the machine, to ``bench/.results/latest.json``.

    python -m bench                 # all of them, about four minutes
    python -m bench --only drain    # one (repeat --only for more)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.common import Row
from bench.harness import Report
from protocol.errors import MachikadoError

#: A benchmark as the runner calls it: told where to report its stage, it returns its rows.
Benchmark = Callable[[Report], list[Row]]

RESULTS = Path(__file__).resolve().parent / ".results" / "latest.json"

_TARGET = re.compile(r"^\s*(>=|<=)\s*([0-9][0-9,]*(?:\.[0-9]+)?)")


def _outbox(report: Report) -> list[Row]:
    from bench import bench_outbox

    report("appending to the outbox")
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        return bench_outbox.run(Path(tmp))


def _drain(report: Report) -> list[Row]:
    from bench import bench_drain

    return bench_drain.run(report=report)


def _agent(report: Report) -> list[Row]:
    from bench import bench_agent

    return bench_agent.run(report=report)


def _collector(report: Report) -> list[Row]:
    from bench import bench_collector

    return bench_collector.run(report=report)


def _kiosk(report: Report) -> list[Row]:
    from bench import bench_kiosk

    return bench_kiosk.run(report=report)


def _web(report: Report) -> list[Row]:
    from bench import bench_web

    return bench_web.run(report=report)


BENCHMARKS: dict[str, Benchmark] = {
    "outbox": _outbox,
    "drain": _drain,
    "agent": _agent,
    "collector": _collector,
    "kiosk": _kiosk,
    "web": _web,
}


def target_met(row: Row) -> bool | None:
    """Whether ``row.ours`` meets a target written as ``>= N ...`` or ``<= N ...``; else None.

    >>> target_met(Row(name="rss", ours=48.0, unit="MB", target="<= 60 MB"))
    True
    """
    match = _TARGET.match(row.target)
    if match is None:
        return None
    limit = float(match.group(2).replace(",", ""))
    return row.ours >= limit if match.group(1) == ">=" else row.ours <= limit


def number(value: float) -> str:
    """A figure with as many decimals as its size needs: 5,731 / 48.3 / 1.27."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render(rows: Sequence[Row], title: str = "machikado node benchmarks") -> Table:
    """One table: benchmark, ours, reference and what it is, ratio, target, met."""
    table = Table(title=title, show_lines=True)
    table.add_column("benchmark")
    table.add_column("ours", justify="right")
    table.add_column("reference (what it is)")
    table.add_column("ratio", justify="right")
    table.add_column("target")
    table.add_column("met", justify="center")
    for row in rows:
        ratio, met = row.ratio, target_met(row)
        reference = ""
        if row.reference is not None:
            reference = f"{number(row.reference)} {row.unit}\n[dim]{row.reference_label}[/dim]"
        table.add_row(
            row.name,
            f"{number(row.ours)} {row.unit}",
            reference,
            f"{ratio:.2f}x" if ratio is not None else "",
            row.target,
            "" if met is None else ("[green]yes[/green]" if met else "[red]no[/red]"),
        )
    return table


def results_json(rows: Sequence[Row], failures: Mapping[str, str]) -> dict[str, Any]:
    """The rows, each with its ratio and whether its target is met, and the machine they ran on."""
    return {
        "ran_at": datetime.now(UTC).isoformat(),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "machine": platform.machine(),
        },
        "rows": [{**asdict(r), "ratio": r.ratio, "target_met": target_met(r)} for r in rows],
        "failures": dict(failures),
    }


def run_benchmarks(
    benchmarks: Mapping[str, Benchmark], *, console: Console, results: Path = RESULTS
) -> int:
    """Run each benchmark under a progress display, print the table, write the JSON.

    A benchmark that fails is reported by name and the others still run; the exit status is 1
    when any failed. AssertionError counts as a failure because the node helpers shared with the
    integration tests signal a node that died or never finished with it.
    """
    rows: list[Row] = []
    failures: dict[str, str] = {}
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        overall = progress.add_task(f"0 of {len(benchmarks)} benchmarks", total=len(benchmarks))
        for done, (name, benchmark) in enumerate(benchmarks.items(), start=1):
            task = progress.add_task(f"{name}: starting", total=1)

            def report(stage: str, task: Any = task, name: str = name) -> None:
                progress.update(task, description=f"{name}: {stage}")

            started = time.perf_counter()
            try:
                rows += benchmark(report)
            except (MachikadoError, OSError, AssertionError) as exc:
                failures[name] = str(exc)
                report(f"[red]failed[/red] after {time.perf_counter() - started:.0f} s")
            else:
                report(f"done in {time.perf_counter() - started:.0f} s")
            progress.update(task, completed=1)
            progress.update(
                overall, completed=done, description=f"{done} of {len(benchmarks)} benchmarks"
            )
    console.print(render(rows))
    for name, error in failures.items():
        console.print(f"[red]{name} failed:[/red] {error}", markup=True, highlight=False)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(results_json(rows, failures), indent=2) + "\n", encoding="utf-8")
    console.print(f"results written to {results}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen benchmarks."""
    parser = argparse.ArgumentParser(prog="python -m bench", description="Run the node benchmarks.")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        help="run only this benchmark (repeat for more); default: all",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    chosen = {name: BENCHMARKS[name] for name in BENCHMARKS if not args.only or name in args.only}
    return run_benchmarks(chosen, console=Console(), results=args.results)


if __name__ == "__main__":
    sys.exit(main())
