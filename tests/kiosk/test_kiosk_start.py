"""The kiosk's start: window first, config validated right after the first frame.

A config that only the full validation refuses is shown in the window, and the command still
ends the usual way for a bad config: one line on stderr naming the key, exit status 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kiosk.cli import window_settings

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 120

# The child runs the real `machikado kiosk --config` offscreen; the scheduled check looks at
# what the window shows while the error is held, before the app stops.
CHILD = """
import sys
from kiosk.offscreen import use_offscreen
from pathlib import Path
KIVY_HOME, SHOT, CONFIG = sys.argv[1:4]
use_offscreen(Path(KIVY_HOME))
from kivy.clock import Clock
from kivy.app import App

def look(_dt):
    app = App.get_running_app()
    if app is None or app.start_error is None:
        Clock.schedule_once(look, 0.05)
        return
    shown = app.manager.get_screen("attract").ids["error"].text
    print("SHOWN:" + shown.replace("\\n", " "), flush=True)
    Clock.schedule_once(shoot, 0.2)  # after the message has been drawn


def shoot(_dt):
    from kivy.core.window import Window
    Window.screenshot(name=SHOT)

Clock.schedule_once(look, 0)
# Held long enough for the screenshot 0.2 s after the message, on a loaded machine too (a 0.5 s
# hold let the app stop first in CI).
sys.argv = ["machikado", "kiosk", "--config", CONFIG, "--error-hold-s", "3"]
from machikado.cli import main
main()
"""


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(
        f"""
[node]
id = "kiosk-01"
kind = "kiosk"
data_dir = "{tmp_path / "data"}"

[kiosk]
fullscreen = false
width = 800
height = 600
{extra}
""",
        encoding="utf-8",
    )
    return path


def test_a_config_refused_after_the_window_opened_is_shown_then_exits_2(tmp_path: Path) -> None:
    config = _config(tmp_path, "idle_s = -5\n\n[mqtt]\nport = 0\n")
    shot = tmp_path / "error.png"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "kivy"), str(shot), str(config)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("machikado: config ")
    assert "mqtt.port" in last
    assert "kiosk.idle_s" in last
    shown = [line for line in proc.stdout.splitlines() if line.startswith("SHOWN:")]
    assert shown, proc.stdout
    assert "cannot start" in shown[0]
    assert "mqtt.port" in shown[0]
    assert any(tmp_path.glob("error*.png"))


def test_window_settings_come_from_the_toml_without_validating_the_rest(tmp_path: Path) -> None:
    config = _config(tmp_path, 'default_language = "en"\n\n[mqtt]\nport = 0\n')
    early = window_settings(config)
    assert early is not None
    assert (early.width, early.height, early.fullscreen, early.default_language) == (
        800,
        600,
        False,
        "en",
    )


def test_a_file_not_simply_readable_is_left_to_the_full_validation(tmp_path: Path) -> None:
    assert window_settings(_config(tmp_path, 'width = "wide"\n')) is None
    broken = tmp_path / "broken.toml"
    broken.write_text("[node\n", encoding="utf-8")
    assert window_settings(broken) is None
    restroom = tmp_path / "restroom.toml"
    restroom.write_text('[node]\nid = "rr-01"\nkind = "restroom"\n', encoding="utf-8")
    assert window_settings(restroom) is None
