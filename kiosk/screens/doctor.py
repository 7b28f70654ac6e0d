"""The doctor screen: send the request, then ticket, QR code, waiting time and the reply, or
that the request ran out unanswered."""

from __future__ import annotations

from kivy.properties import NumericProperty, OptionProperty, StringProperty

from kiosk.screens.base import KioskScreen


class DoctorScreen(KioskScreen):
    """A remote doctor, in phases: ask -> waiting -> replied (or unavailable, or expired)."""

    phase = OptionProperty("ask", options=["ask", "unavailable", "waiting", "replied", "expired"])
    #: How long a request may wait for an answer, in whole minutes (the expired phase says it).
    ttl_minutes = NumericProperty(30)
    ticket_number = StringProperty("")
    code = StringProperty("")
    qr_payload = StringProperty("")
    waited_s = NumericProperty(0)
    reply_text = StringProperty("")

    def reset(self) -> None:
        super().reset()
        self.phase = "ask"
        self.ticket_number = ""
        self.code = ""
        self.qr_payload = ""
        self.waited_s = 0
        self.reply_text = ""
