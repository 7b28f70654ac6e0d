"""The kiosk's cold start to its first frame and its RSS then, beside a bare Kivy app's.

Each run is a fresh Python process rendering offscreen (SDL's ``offscreen`` driver, Mesa EGL),
timed from just before it is spawned until it reports its first frame on stdout; at that
moment the process is paused on a read of stdin and psutil takes its RSS. The kiosk is started
the real way: the ``machikado`` console script's root command (``machikado.cli.main``, which
reads the root options and loads the kiosk part from its entry point) with the command line
``machikado kiosk --config PATH``, then the kiosk's node runtime (outbox, MQTT link to a
broker that is not there) and the shipped protocol, content and translations; the reference is
a Kivy app showing one Label. Runs alternate between the two so both see the same machine
load; the figures are medians. The file cache is warm after the first run (dropping it would
disturb everything else on the machine), so "cold" means a new process. Run alone with
``python -m bench.bench_kiosk``.

Targets (issue 4): at most 1.5x the bare app's start time, at most 80 MB more RSS.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.common import Row
    from bench.harness import Report

# The children import this module too: what it imports at the top counts as their start time,
# so the harness's own modules (structlog, the protocol's pydantic models) are imported where
# the parent uses them, never here.

RUNS = 5
#: The target is in megabytes of 10**6 bytes, the stricter reading of "MB".
MB = 1_000_000
START_FACTOR = 1.5
EXTRA_RSS_MB = 80.0
FIRST_FRAME = "FIRST_FRAME"
REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120.0

# The child's side. Kept free of imports beyond the stdlib: they would count as start time.


def _report_first_frame() -> None:
    """After the first frame is flipped: say so, wait to be measured, leave at once."""
    from kivy.clock import Clock
    from kivy.core.window import Window

    def flipped(*_a: object) -> None:
        Window.unbind(on_flip=flipped)
        # on_flip runs before the buffers swap; the next tick comes after it.
        Clock.schedule_once(done, 0)

    def done(_dt: float) -> None:
        sys.stdout.write(f"{FIRST_FRAME}\n")
        sys.stdout.flush()
        sys.stdin.readline()
        os._exit(0)  # the measurement is taken; skip shutting down

    Window.bind(on_flip=flipped)


def child_kiosk(config: str) -> None:
    """``machikado kiosk --config``, with the first-frame report scheduled for its first tick."""
    from kivy.clock import Clock

    Clock.schedule_once(lambda _dt: _report_first_frame(), 0)
    from machikado.cli import main

    sys.argv = ["machikado", "kiosk", "--config", config]
    main()


def child_bare() -> None:
    """The reference: a Kivy app with one Label, same window size, same report."""
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.config import Config
    from kivy.uix.label import Label

    Config.set("graphics", "width", "1280")
    Config.set("graphics", "height", "800")

    class Bare(App):  # type: ignore[misc]  # Kivy has no type hints
        def build(self) -> Label:
            return Label(text="machikado")

    Clock.schedule_once(lambda _dt: _report_first_frame(), 0)
    Bare().run()


# The parent's side.


def _env(kivy_home: Path) -> dict[str, str]:
    """The same Kivy environment for both: offscreen, no files of Kivy's own, no arguments."""
    return {
        **os.environ,
        "SDL_VIDEODRIVER": "offscreen",
        "KIVY_HOME": str(kivy_home),
        "KIVY_NO_ARGS": "1",
        "KIVY_NO_CONSOLELOG": "1",
        "KIVY_NO_FILELOG": "1",
        "KIVY_NO_CONFIG": "1",
        "KIVY_LOG_MODE": "PYTHON",
        "PYTHONUNBUFFERED": "1",
    }


def _config(directory: Path) -> Path:
    """A kiosk node config: a windowed 1280x800 kiosk whose broker is not running."""
    path = directory / "kiosk.toml"
    path.write_text(
        f"""
[node]
id = "bench-kiosk"
kind = "kiosk"
data_dir = "{directory / "data"}"

[mqtt]
host = "127.0.0.1"
port = 9

[health]
interval_s = 3600

[kiosk]
fullscreen = false
width = 1280
height = 800
""",
        encoding="utf-8",
    )
    return path


def start_once(code: str, env: dict[str, str], log: Path) -> tuple[float, float]:
    """Spawn ``python -c code``; return (seconds to its first frame, RSS in MB then)."""
    import psutil

    with log.open("ab") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=REPO,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdin is not None
        try:
            line = _read_marker(proc)
            elapsed = time.perf_counter() - started
            rss = psutil.Process(proc.pid).memory_info().rss / MB
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if line is None:
        from bench.errors import BenchError

        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise BenchError(f"kiosk bench: no first frame from `{code}`:\n{tail}")
    return elapsed, rss


def _read_marker(proc: subprocess.Popen[str]) -> str | None:
    assert proc.stdout is not None
    deadline = time.monotonic() + TIMEOUT_S
    for line in proc.stdout:  # the child prints little besides the marker
        if line.strip() == FIRST_FRAME:
            return line
        if time.monotonic() > deadline:
            break
    return None


def run(*, runs: int = RUNS, report: Report | None = None) -> list[Row]:
    """Start the kiosk and the bare app ``runs`` times each, alternating; return the rows."""
    from bench.common import Row
    from bench.harness import ignore

    report = report or ignore
    with tempfile.TemporaryDirectory(prefix="bench-kiosk-") as tmp:
        base = Path(tmp)
        config = _config(base)
        env = _env(base / "kivy")
        log = base / "children.log"
        kiosk_code = f"from bench.bench_kiosk import child_kiosk; child_kiosk({str(config)!r})"
        bare_code = "from bench.bench_kiosk import child_bare; child_bare()"
        kiosk: list[tuple[float, float]] = []
        bare: list[tuple[float, float]] = []
        for i in range(runs):
            report(f"run {i + 1} of {runs}: bare Kivy app")
            bare.append(start_once(bare_code, env, log))
            report(f"run {i + 1} of {runs}: kiosk")
            kiosk.append(start_once(kiosk_code, env, log))
    k_start = statistics.median(s for s, _ in kiosk)
    b_start = statistics.median(s for s, _ in bare)
    k_rss = statistics.median(r for _, r in kiosk)
    b_rss = statistics.median(r for _, r in bare)
    label = f"bare Kivy app with one Label, median of {runs}"
    return [
        Row(
            name="kiosk cold start to first frame (s), offscreen",
            ours=k_start,
            unit="s",
            reference=b_start,
            reference_label=label,
            higher_is_better=False,
            target=f"<= {START_FACTOR * b_start:.2f} s ({START_FACTOR:g}x the bare app)",
        ),
        Row(
            name="kiosk RSS at first frame (MB)",
            ours=k_rss,
            unit="MB",
            reference=b_rss,
            reference_label=label,
            higher_is_better=False,
            target=f"<= {b_rss + EXTRA_RSS_MB:.1f} MB (bare app + {EXTRA_RSS_MB:g} MB)",
        ),
    ]


if __name__ == "__main__":
    from rich.console import Console

    from bench.__main__ import render

    Console().print(render(run(report=print), title="kiosk start"))
