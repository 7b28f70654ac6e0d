"""The base of every kiosk screen: rebuild on a language change, reset on a wipe, read aloud."""

from __future__ import annotations

from kivy.uix.label import Label
from kivy.uix.screenmanager import Screen
from kivy.uix.widget import Widget


class KioskScreen(Screen):  # type: ignore[misc]  # Kivy has no type hints
    """A screen of the kiosk; subclasses fill in what kv bindings cannot.

    In a ``.kv`` file: ``<HomeScreen>:`` with ``name: "home"``, and ``class
    HomeScreen(KioskScreen)`` in Python.
    """

    def refresh(self) -> None:
        """Rebuild what is made in Python (option buttons, lists) for the current language."""

    def reset(self) -> None:
        """Forget everything shown to the last resident: contents and scroll position."""
        # Imported here: the attract screen, the only one built before the first frame, has
        # no scroll view.
        from kivy.uix.scrollview import ScrollView

        scroll = self.ids.get("scroll")
        if isinstance(scroll, ScrollView):
            scroll.scroll_y = 1

    def texts(self) -> list[str]:
        """The visible texts, top to bottom, left to right: what read-aloud speaks."""
        found: list[tuple[float, float, str]] = []

        def walk(widget: Widget) -> None:
            if widget.opacity == 0:
                return
            if isinstance(widget, Label) and widget.text.strip():
                x, y = widget.to_window(widget.x, widget.top)
                found.append((-y, x, widget.text.strip()))
            for child in widget.children:
                walk(child)

        walk(self)
        return [text for _, _, text in sorted(found)]
