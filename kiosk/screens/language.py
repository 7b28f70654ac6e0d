"""The language screen: every language named in itself and in its own font."""

from __future__ import annotations

from typing import Any

from kivy.app import App

from kiosk.screens.base import KioskScreen
from kiosk.widgets import KButton


class LanguageScreen(KioskScreen):
    """Choose a language; then back to where the resident was (home at the start)."""

    def refresh(self) -> None:
        app: Any = App.get_running_app()
        choices = self.ids.choices
        choices.clear_widgets()
        for lang in app.catalog.languages:
            button = KButton(
                text=lang.name,
                font_override=app.font_of(lang.code),
                role="primary" if lang.code == app.lang else "secondary",
            )
            button.language = lang.code
            button.bind(on_release=lambda b: app.choose_language(b.language))
            choices.add_widget(button)
            self.ids[f"lang_{lang.code}"] = button
