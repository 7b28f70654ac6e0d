"""The attract screen: touch anywhere to start."""

from __future__ import annotations

from typing import Any

from kivy.app import App

from kiosk.screens.base import KioskScreen
from kiosk.widgets import KLabel


class AttractScreen(KioskScreen):
    """Shown while the kiosk is idle; any touch starts a session."""

    def refresh(self) -> None:
        app: Any = App.get_running_app()
        lines = self.ids.lines
        lines.clear_widgets()
        for lang in app.catalog.languages:
            lines.add_widget(
                KLabel(
                    text=app.catalog.text(lang.code, "attract.touch_to_start"),
                    font_override=app.font_of(lang.code),
                    halign="center",
                )
            )

    def on_touch_up(self, touch: Any) -> bool:
        if self.collide_point(*touch.pos) and self.manager.current == self.name:
            App.get_running_app().start()
            return True
        return bool(super().on_touch_up(touch))
