"""The triage screen: the current question and one big button per answer."""

from __future__ import annotations

from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.properties import BooleanProperty, NumericProperty, StringProperty

from kiosk.screens.base import KioskScreen
from kiosk.triage.protocol import STAGES
from kiosk.widgets import KButton


class TriageScreen(KioskScreen):
    """One question per screen; answer buttons have ids ``opt_<option id>``."""

    question_text = StringProperty("")
    #: Progress by stage (red flags, age, symptom, details): 1..4 of 4.
    step = NumericProperty(1)
    steps = NumericProperty(len(STAGES))
    is_sample = BooleanProperty(False)
    #: The how-many-th question this is (answers so far + 1).
    number = NumericProperty(1)
    _shown: Any = None

    def refresh(self) -> None:
        app: Any = App.get_running_app()
        options = self.ids.options
        options.clear_widgets()
        for key in [k for k in self.ids if str(k).startswith("opt_")]:
            del self.ids[key]
        triage = app.session.triage
        question = triage.current if triage is not None else None
        if question is None:
            self.question_text = ""
            return
        self.is_sample = triage.protocol.sample
        self.step = STAGES.index(question.stage) + 1
        self.number = len(triage.answers) + 1
        self.question_text = app.ptext(app.lang, question.text)
        if question is not self._shown:
            # A new question starts at its top, also once its buttons are laid out.
            self.ids.scroll.scroll_y = 1
            Clock.schedule_once(lambda _dt: setattr(self.ids.scroll, "scroll_y", 1))
            self._shown = question
        for option in question.options:
            button = KButton(text=app.ptext(app.lang, option.text))
            button.option_id = option.id
            button.bind(on_release=lambda b: app.answer(b.option_id))
            options.add_widget(button)
            self.ids[f"opt_{option.id}"] = button

    def reset(self) -> None:
        super().reset()
        self.question_text = ""
        self.ids.options.clear_widgets()
