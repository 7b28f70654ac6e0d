"""The kiosk without a screen: SDL's offscreen driver (Mesa EGL), frames advanced by hand,
taps as real touch events, screenshots. Used by ``machikado kiosk snapshot`` and the UI tests.

:func:`use_offscreen` must run before Kivy is first imported (Kivy reads its environment once).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kiosk.errors import KioskError


def use_offscreen(kivy_home: Path) -> None:
    """Render offscreen, keep Kivy's files in ``kivy_home``, never parse our arguments."""
    if "kivy" in sys.modules:
        raise KioskError("Kivy is already imported: call use_offscreen() before importing it")
    kivy_home.mkdir(parents=True, exist_ok=True)
    os.environ["SDL_VIDEODRIVER"] = "offscreen"
    os.environ["KIVY_HOME"] = str(kivy_home)
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    os.environ.setdefault("KIVY_NO_FILELOG", "1")
    os.environ.setdefault("KIVY_NO_CONFIG", "1")


class Offscreen:
    """Drives a built kiosk app frame by frame.

    Example (after :func:`use_offscreen`)::

        with Offscreen(KioskApp(settings, node=None)) as k:
            k.tap(k.app.screen("home").ids.consult)
            k.wait_until(lambda: k.app.manager.current == "triage")
            k.screenshot(Path("triage.png"))
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __enter__(self) -> Offscreen:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        # What App.run() does before its main loop; the loop is ours (frames()).
        self.app._run_prepare()
        self.frames(2)

    def stop(self) -> None:
        self.app.stop()

    def frames(self, n: int = 1) -> None:
        """Let ``n`` frames pass: clock callbacks, input, layout, drawing."""
        from kivy.base import EventLoop

        for _ in range(n):
            EventLoop.idle()

    def wait_until(self, condition: Callable[[], object], *, timeout_s: float = 15.0) -> None:
        """Advance frames until ``condition()`` holds; :class:`TimeoutError` after the bound."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout_s} s: {condition}")
            self.frames()

    def settle(self) -> None:
        """Frames until layouts depending on text sizes have caught up."""
        self.frames(4)

    def tap(self, widget: Any) -> None:
        """A finger down and up on the centre of ``widget``, through the window like a real one."""
        from kivy.base import EventLoop
        from kivy.core.window import Window
        from kivy.uix.scrollview import ScrollView

        self.frames(2)  # a widget made just now gets its place in the layout first
        if widget.get_root_window() is None:
            raise KioskError(f"cannot tap {widget!r}: it is not on screen")
        # Like a resident, scroll it into view first.
        parent = widget.parent
        # The window is its own parent: stop there.
        while parent is not None and not isinstance(parent, ScrollView):
            parent = None if parent.parent is parent else parent.parent
        if parent is not None and not _inside(widget, parent):
            parent.scroll_to(widget, padding=10, animate=False)
            self.frames(4)
        x, y = widget.to_window(*widget.center)
        touch = _Tap(x / Window.width, y / Window.height)
        EventLoop.post_dispatch_input("begin", touch)
        self.frames()
        EventLoop.post_dispatch_input("end", touch)
        self.frames(2)

    def screenshot(self, path: Path) -> Path:
        """The window as a PNG at ``path``."""
        from kivy.core.window import Window

        self.settle()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Kivy numbers its screenshots (name0001.png); move that to the name asked for.
        written = Window.screenshot(name=str(path))
        if not written:
            raise KioskError(f"screenshot {path}: the window gave no pixels")
        os.replace(written, path)
        return path


def _inside(widget: Any, view: Any) -> bool:
    """Whether ``widget`` is wholly within the visible part of the scroll view ``view``."""
    _, bottom = widget.to_window(widget.x, widget.y)
    _, top = widget.to_window(widget.x, widget.top)
    _, view_bottom = view.to_window(view.x, view.y)
    _, view_top = view.to_window(view.x, view.top)
    return bool(view_bottom <= bottom and top <= view_top)


def _tap_class() -> type:
    from kivy.input.motionevent import MotionEvent

    class Tap(MotionEvent):  # type: ignore[misc]
        """A single touch at a position given as fractions of the window size."""

        def __init__(self, sx: float, sy: float) -> None:
            super().__init__("offscreen", id(self), (sx, sy), is_touch=True, type_id="touch")

        def depack(self, args: tuple[float, float]) -> None:
            self.sx, self.sy = args
            self.profile = ["pos"]
            super().depack(args)

    return Tap


def _Tap(sx: float, sy: float) -> Any:
    return _tap_class()(sx, sy)
