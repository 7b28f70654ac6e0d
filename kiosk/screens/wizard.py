"""The wizard: who you are and what you need, several of each."""

from __future__ import annotations

from typing import Any

from kivy.app import App

from kiosk.screens.base import KioskScreen
from kiosk.widgets import KToggle


class WizardScreen(KioskScreen):
    """Toggles with ids ``who_<tag>`` and ``what_<tag>``, from the current content pack."""

    def refresh(self) -> None:
        app: Any = App.get_running_app()
        pack = app.content.pack
        chosen = {"who": app.session.wizard_who, "what": app.session.wizard_what}
        for key in [k for k in self.ids if str(k).startswith(("who_", "what_"))]:
            del self.ids[key]
        for kind, tags in (("who", pack.who_tags), ("what", pack.what_tags)):
            grid = self.ids[kind]
            grid.clear_widgets()
            for tag in tags:
                toggle = KToggle(
                    text=pack.label(app.lang, kind, tag),
                    value=tag,
                    state="down" if tag in chosen[kind] else "normal",
                )
                toggle.bind(state=lambda t, _s, k=kind: app.choose_need(k, t.value, t.state))
                grid.add_widget(toggle)
                self.ids[f"{kind}_{tag}"] = toggle

    def chosen(self, kind: str) -> set[str]:
        """The tags of ``kind`` ("who" or "what") chosen now."""
        return {t.value for t in self.ids[kind].children if t.state == "down"}

    def reset(self) -> None:
        super().reset()
        for kind in ("who", "what"):
            for toggle in self.ids[kind].children:
                toggle.state = "normal"
