"""The emergency screen: the emergency number at once, in red."""

from __future__ import annotations

from kivy.properties import StringProperty

from kiosk.screens.base import KioskScreen


class EmergencyScreen(KioskScreen):
    """Shown the moment a red flag is answered."""

    number = StringProperty("119")
    #: The answer that made it an emergency, in the resident's language.
    reason = StringProperty("")

    def reset(self) -> None:
        super().reset()
        self.reason = ""
