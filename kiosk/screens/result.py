"""The result screen: tier, answers given, and that it is not a diagnosis."""

from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.properties import StringProperty

from kiosk.screens.base import KioskScreen
from kiosk.widgets import KLabel


class ResultScreen(KioskScreen):
    """The outcome of the interview, to show a doctor or an ambulance crew."""

    #: "red", "yellow", "green", "white", or "" before an outcome.
    tier = StringProperty("")

    def refresh(self) -> None:
        app: Any = App.get_running_app()
        answers = self.ids.answers
        answers.clear_widgets()
        triage = app.session.triage
        outcome = triage.outcome if triage is not None else None
        if outcome is None:
            self.tier = ""
            return
        self.tier = outcome.tier.value
        for answer in outcome.answers:
            question = app.ptext(app.lang, answer.question_text)
            option = app.ptext(app.lang, answer.option_text)
            answers.add_widget(KLabel(text=f"• {question}\n    → {option}"))

    def reset(self) -> None:
        super().reset()
        self.tier = ""
        self.ids.answers.clear_widgets()
