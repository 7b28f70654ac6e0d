"""The triage interview: one resident's way through a protocol, answer by answer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kiosk.errors import TriageStateError
from kiosk.triage.protocol import Option, Question, Tier, TriageProtocol


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer given: which question, which option, and the tier it raised (if any).

    ``question_text`` and ``option_text`` are protocol text keys, for showing the answers to a
    doctor or an ambulance crew in any language.
    """

    question_id: str
    option_id: str
    question_text: str
    option_text: str
    stage: str
    tier: Tier | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The end of an interview: the most urgent tier reached, why, and every answer given.

    ``reasons`` are the answers that raised the tier to its final level; ``emergency_number``
    is set when the tier is red, to be shown at once.
    """

    tier: Tier
    reasons: tuple[Answer, ...]
    answers: tuple[Answer, ...]
    emergency_number: str | None

    @property
    def is_emergency(self) -> bool:
        """Whether the resident must call an ambulance now (tier red)."""
        return self.tier is Tier.RED


class TriageSession:
    """One resident's interview: ask ``current``, ``answer`` it, ``back`` to correct.

    >>> from kiosk.triage import TriageProtocol
    >>> s = TriageSession(TriageProtocol.load())
    >>> s.current.stage
    'red_flags'
    >>> s.answer(s.current.options[0].id)   # the first life-threatening sign: "yes"
    >>> s.done, s.outcome.tier, s.outcome.emergency_number
    (True, <Tier.RED: 'red'>, '119')
    >>> s.back()
    True
    >>> s.done
    False
    """

    def __init__(self, protocol: TriageProtocol) -> None:
        self.protocol = protocol
        self._steps: list[tuple[Question, Option]] = []

    @property
    def current(self) -> Question | None:
        """The question to ask now; None when the interview is over."""
        if self._steps:
            _question, option = self._steps[-1]
            if option.ends:
                return None
            assert option.next is not None  # not ends, so it has a next
            return self._resolve(option.next)
        return self._resolve(self.protocol.start)

    @property
    def done(self) -> bool:
        """Whether the interview has reached its end (an outcome)."""
        return self.current is None

    def answer(self, option_id: str) -> None:
        """Answer the current question with one of its options."""
        question = self.current
        if question is None:
            raise TriageStateError("the interview is over; go back to change an answer")
        option = question.option(option_id)
        if option is None:
            ids = ", ".join(o.id for o in question.options)
            raise TriageStateError(
                f"question {question.id!r} has no option {option_id!r} (options: {ids})"
            )
        self._steps.append((question, option))

    def back(self) -> bool:
        """Undo the last answer; False if there was none."""
        if not self._steps:
            return False
        self._steps.pop()
        return True

    @property
    def answers(self) -> list[Answer]:
        """Every answer given so far, in order."""
        return [Answer(q.id, o.id, q.text, o.text, q.stage, o.tier) for q, o in self._steps]

    @property
    def path_taken(self) -> list[str]:
        """The ids of the questions answered, in order."""
        return [q.id for q, _ in self._steps]

    @property
    def tier(self) -> Tier | None:
        """The most urgent tier reached so far (None before any answer raised one)."""
        tiers = [o.tier for _, o in self._steps if o.tier is not None]
        return max(tiers, key=lambda t: t.urgency) if tiers else None

    @property
    def age_band(self) -> str | None:
        """The option id chosen at the age band question, if answered."""
        return self._stage_answer("age_band")

    @property
    def symptom(self) -> str | None:
        """The option id chosen as the main symptom, if answered."""
        return self._stage_answer("symptom")

    @property
    def outcome(self) -> Outcome | None:
        """The outcome once the interview is over, else None."""
        if not self.done:
            return None
        tier = self.tier
        if tier is None:  # the validator rules this out for loaded protocols
            return None
        answers = self.answers
        reasons = tuple(a for a in answers if a.tier is tier)
        number = self.protocol.emergency_number if tier is Tier.RED else None
        return Outcome(tier, reasons, tuple(answers), number)

    def _stage_answer(self, stage: str) -> str | None:
        for q, o in self._steps:
            if q.stage == stage:
                return o.id
        return None

    def _resolve(self, question_id: str) -> Question:
        # Skip questions whose ask_if condition the answers so far do not meet.
        chosen = {q.id: o.id for q, o in self._steps}
        question = self.protocol.question(question_id)
        while question.ask_if is not None:
            other, allowed = question.ask_if
            if chosen.get(other) in allowed:
                break
            assert question.otherwise is not None  # the validator requires it
            question = self.protocol.question(question.otherwise)
        return question


def all_paths(protocol: TriageProtocol) -> Iterator[list[str]]:
    """Every possible sequence of option ids from the first question to an end.

    >>> from kiosk.triage import TriageProtocol
    >>> paths = list(all_paths(TriageProtocol.load()))
    >>> len(paths) > 50
    True
    """
    session = TriageSession(protocol)

    def walk(prefix: list[str]) -> Iterator[list[str]]:
        question = session.current
        if question is None:
            yield list(prefix)
            return
        for option in question.options:
            session.answer(option.id)
            prefix.append(option.id)
            yield from walk(prefix)
            prefix.pop()
            session.back()

    yield from walk([])
