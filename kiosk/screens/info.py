"""The information screen: ranked items for the resident's situation, with QR codes."""

from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.metrics import dp
from kivy.properties import NumericProperty
from kivy.uix.boxlayout import BoxLayout

from kiosk.screens.base import KioskScreen
from kiosk.widgets import KLabel, KTitle, QrCode


class InfoScreen(KioskScreen):
    """Items best first; each item box has id ``entry_<n>`` and its QR code ``qr_<n>``."""

    count = NumericProperty(0)

    def refresh(self) -> None:
        app: Any = App.get_running_app()
        self.show(app.ranked_items() if app.session.started else [])

    def show(self, items: list[Any]) -> None:
        """Lay out ``items`` (the content pack's ranked items, texts in the current language)."""
        box = self.ids.item_list
        box.clear_widgets()
        for key in [k for k in self.ids if str(k).startswith(("entry_", "qr_"))]:
            del self.ids[key]
        for n, ranked in enumerate(items):
            row = BoxLayout(spacing=dp(24), size_hint_y=None)
            # Title and QR code both hang from the top of the row, whichever is taller.
            text = BoxLayout(
                orientation="vertical", size_hint_y=None, spacing=dp(8), pos_hint={"top": 1}
            )
            text.bind(minimum_height=text.setter("height"))
            text.add_widget(KTitle(text=ranked.title, scale=1.15))
            text.add_widget(KLabel(text=ranked.body))
            row.add_widget(text)
            if ranked.link:
                qr = QrCode(
                    data=ranked.link,
                    size_hint=(None, None),
                    size=(dp(180), dp(180)),
                    pos_hint={"top": 1},
                )
                row.add_widget(qr)
                self.ids[f"qr_{n}"] = qr
            text.bind(height=lambda t, h, r=row: setattr(r, "height", max(h, dp(180))))
            row.height = max(text.height, dp(180))
            box.add_widget(row)
            self.ids[f"entry_{n}"] = row
        self.count = len(items)

    def reset(self) -> None:
        super().reset()
        self.show([])
