"""Triage protocol files: the versioned YAML format, its model and its validator.

A protocol is data a city's doctors review, not code. Version 1 of the format::

    format: machikado-triage
    version: 1
    id: sample
    revision: "2025-06-sample-1"
    sample: true                 # true: shown on screen as a sample, not clinically reviewed
    emergency_number: "119"      # shown at once whenever the outcome is red
    languages: [ja, ja-easy, en, zh-Hans, ko, vi]
    title: protocol.title        # text keys, see ``texts``
    disclaimer: protocol.disclaimer
    start: rf_breathing          # the first question; it must be a red_flags question
    questions:
      rf_breathing:
        stage: red_flags         # red_flags | age_band | symptom | symptom_red_flags | modifier
        text: q.rf_breathing
        options:
          - {id: not_breathing, text: o.not_breathing, tier: red, stop: true}
          - {id: none, text: o.none_of_these, next: age}
      fever_infant:
        stage: modifier
        text: q.fever_infant
        ask_if: {age: [infant]}  # asked only if question ``age`` was answered with one of these
        otherwise: fever_days    # where the interview goes when it is not asked
        options:
          - {id: "yes", text: o.yes, tier: yellow, next: fever_days}
          - {id: "no", text: o.no, next: fever_days}
    texts:
      q.rf_breathing: {ja: ..., ja-easy: ..., en: ..., zh-Hans: ..., ko: ..., vi: ...}

The stages follow emergency triage practice: life-threatening red flags first, then age band,
then the main symptom (chosen from a list, never typed), then that symptom's red flags and
modifiers. An option may raise the tier (``tier``); the outcome is the most urgent tier any
answer reached. ``stop: true`` ends the interview at once (a red flag: 119 is shown without
asking anything more). An option without ``next`` ends the interview too, and every option that
ends it must carry a tier, so every path ends in a tier.

Every visible text (title, disclaimer, question and option texts) is a key into the protocol's
own ``texts``, which carries it in every language the protocol lists: the protocol and its
wording are reviewed together, and the kiosk's UI catalog holds only the fixed UI texts (tier
names, buttons). :func:`validate_protocol` returns every reason a file cannot be used.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from kiosk import yamlfile
from kiosk.errors import TriageProtocolError

FORMAT = "machikado-triage"
VERSION = 1
STAGES = ("red_flags", "age_band", "symptom", "symptom_red_flags", "modifier")
#: Stages whose options with a tier are red flags: red, and ending the interview at once.
RED_FLAG_STAGES = ("red_flags", "symptom_red_flags")
#: Validation gives up enumerating paths beyond this many (a protocol people review is small).
MAX_PATHS = 200_000


class Tier(StrEnum):
    """An outcome tier, from the most urgent down.

    >>> max(Tier.GREEN, Tier.YELLOW, key=lambda t: t.urgency)
    <Tier.YELLOW: 'yellow'>
    """

    #: 赤: call an ambulance now.
    RED = "red"
    #: 黄: see a doctor within about two hours.
    YELLOW = "yellow"
    #: 緑: see a doctor, not urgent.
    GREEN = "green"
    #: 白: watch at home.
    WHITE = "white"

    @property
    def urgency(self) -> int:
        """3 for red down to 0 for white."""
        return _URGENCY[self]


_URGENCY = {Tier.RED: 3, Tier.YELLOW: 2, Tier.GREEN: 1, Tier.WHITE: 0}


@dataclass(frozen=True, slots=True)
class Option:
    """One answer a question offers; ``next`` None ends the interview."""

    id: str
    text: str
    next: str | None = None
    tier: Tier | None = None
    stop: bool = False

    @property
    def ends(self) -> bool:
        """Whether choosing this option ends the interview."""
        return self.stop or self.next is None


@dataclass(frozen=True, slots=True)
class Question:
    """One question: its id, stage, text key and options; ``ask_if`` makes it conditional."""

    id: str
    stage: str
    text: str
    options: tuple[Option, ...]
    #: Asked only if the answer to question ``ask_if[0]`` is one of ``ask_if[1]``.
    ask_if: tuple[str, frozenset[str]] | None = None
    #: Where the interview goes when the question is not asked.
    otherwise: str | None = None

    def option(self, option_id: str) -> Option | None:
        """The option with this id, or None."""
        for opt in self.options:
            if opt.id == option_id:
                return opt
        return None


@dataclass(frozen=True)
class TriageProtocol:
    """A loaded, valid triage protocol.

    >>> p = TriageProtocol.load()
    >>> p.sample, p.emergency_number, p.question(p.start).stage
    (True, '119', 'red_flags')
    >>> p.text("en", p.question(p.start).text)[:8]
    'Is the p'
    """

    id: str
    revision: str
    sample: bool
    emergency_number: str
    languages: tuple[str, ...]
    title: str
    disclaimer: str
    start: str
    questions: Mapping[str, Question]
    texts: Mapping[str, Mapping[str, str]] = field(repr=False)

    @classmethod
    def load(cls, path: Path | str | None = None) -> TriageProtocol:
        """Read and validate a protocol file (default: the shipped sample)."""
        where = Path(path) if path is not None else DEFAULT_PROTOCOL
        try:
            data = yamlfile.safe_load(where.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TriageProtocolError(str(where), [f"cannot read ({exc.strerror})"]) from None
        except yaml.YAMLError as exc:
            raise TriageProtocolError(str(where), [f"not valid YAML ({exc})"]) from None
        return cls.from_data(data, source=str(where))

    @classmethod
    def from_data(cls, data: Any, *, source: str = "triage protocol") -> TriageProtocol:
        """Build a protocol from parsed YAML; :class:`TriageProtocolError` with every reason."""
        reasons = validate_protocol(data)
        if reasons:
            raise TriageProtocolError(source, reasons)
        return _build(data)

    def question(self, question_id: str) -> Question:
        """The question with this id."""
        return self.questions[question_id]

    def text(self, lang: str, key: str) -> str:
        """The protocol text ``key`` in ``lang``."""
        try:
            return self.texts[key][lang]
        except KeyError:
            raise TriageProtocolError(
                "text", [f"no text {key!r} in {lang!r} in protocol {self.id}"]
            ) from None


def _build(data: Mapping[str, Any]) -> TriageProtocol:
    questions: dict[str, Question] = {}
    for qid, q in data["questions"].items():
        ask_if = None
        if q.get("ask_if"):
            ((other, allowed),) = q["ask_if"].items()
            ask_if = (str(other), frozenset(str(a) for a in allowed))
        options = tuple(
            Option(
                id=str(o["id"]),
                text=str(o["text"]),
                next=o.get("next"),
                tier=Tier(o["tier"]) if o.get("tier") else None,
                stop=bool(o.get("stop", False)),
            )
            for o in q["options"]
        )
        questions[str(qid)] = Question(
            id=str(qid),
            stage=str(q["stage"]),
            text=str(q["text"]),
            options=options,
            ask_if=ask_if,
            otherwise=q.get("otherwise"),
        )
    return TriageProtocol(
        id=str(data["id"]),
        revision=str(data["revision"]),
        sample=bool(data.get("sample", False)),
        emergency_number=str(data["emergency_number"]),
        languages=tuple(data["languages"]),
        title=str(data["title"]),
        disclaimer=str(data["disclaimer"]),
        start=str(data["start"]),
        questions=questions,
        texts={str(k): dict(v) for k, v in data["texts"].items()},
    )


def validate_protocol(data: Any, *, languages: list[str] | None = None) -> list[str]:
    """Every reason ``data`` (a parsed protocol file) is not a usable protocol; [] if it is.

    Checks the format and version, that every referenced question and text exists, that every
    text is present and non-empty in every language (the protocol's own list, plus
    ``languages`` if given, e.g. the kiosk's), that tiers are valid, that there are no cycles,
    that every question is reachable, that red-flag options short-circuit to red, and, walking
    every path, that each ends in a tier.

    >>> validate_protocol({"format": "machikado-triage", "version": 2})[0]
    'version: 2 is not supported (this kiosk reads version 1)'
    """
    if not isinstance(data, Mapping):
        return ["the file is not a mapping"]
    reasons: list[str] = []
    if data.get("format") != FORMAT:
        reasons.append(f"format: must be {FORMAT!r}")
    if data.get("version") != VERSION:
        return [
            *reasons,
            f"version: {data.get('version')!r} is not supported "
            f"(this kiosk reads version {VERSION})",
        ]
    for key in ("id", "revision", "emergency_number", "title", "disclaimer", "start"):
        if not isinstance(data.get(key), str) or not data.get(key):
            reasons.append(f"{key}: required text")
    if "sample" in data and not isinstance(data["sample"], bool):
        reasons.append("sample: must be true or false")
    langs = data.get("languages")
    if not isinstance(langs, list) or not langs or not all(isinstance(x, str) for x in langs):
        reasons.append("languages: must be a non-empty list of language codes")
        langs = []
    for code in languages or []:
        if code not in langs:
            reasons.append(f"languages: the kiosk needs {code!r}, the protocol lacks it")
    all_langs = list(dict.fromkeys([*langs, *(languages or [])]))
    texts = data.get("texts")
    if not isinstance(texts, Mapping):
        reasons.append("texts: must be a mapping of key -> {language: text}")
        texts = {}
    used: list[tuple[str, str]] = []
    for key in ("title", "disclaimer"):
        if isinstance(data.get(key), str):
            used.append((key, data[key]))
    questions = data.get("questions")
    if not isinstance(questions, Mapping) or not questions:
        reasons.append("questions: must be a non-empty mapping of id -> question")
        questions = {}
    edges: dict[str, list[str]] = {}
    for qid, q in questions.items():
        where = f"questions.{qid}"
        edges[qid] = []
        if not isinstance(q, Mapping):
            reasons.append(f"{where}: must be a mapping")
            continue
        stage = q.get("stage")
        if stage not in STAGES:
            reasons.append(f"{where}.stage: {stage!r} is not one of {', '.join(STAGES)}")
        if not isinstance(q.get("text"), str):
            reasons.append(f"{where}.text: required text key")
        else:
            used.append((f"{where}.text", q["text"]))
        reasons += _check_ask_if(where, q, questions, edges[qid])
        options = q.get("options")
        if not isinstance(options, list) or not options:
            reasons.append(f"{where}.options: must be a non-empty list")
            continue
        seen: set[str] = set()
        for i, o in enumerate(options):
            ow = f"{where}.options[{i}]"
            if not isinstance(o, Mapping):
                reasons.append(f"{ow}: must be a mapping")
                continue
            oid = o.get("id")
            if not isinstance(oid, str) or not oid:
                reasons.append(f"{ow}.id: required (quote yes/no in YAML)")
            elif oid in seen:
                reasons.append(f"{ow}.id: {oid!r} appears twice")
            else:
                seen.add(oid)
            if not isinstance(o.get("text"), str):
                reasons.append(f"{ow}.text: required text key")
            else:
                used.append((f"{ow}.text", o["text"]))
            tier = o.get("tier")
            if tier is not None and tier not in {t.value for t in Tier}:
                reasons.append(f"{ow}.tier: {tier!r} is not red, yellow, green or white")
            nxt = o.get("next")
            stop = o.get("stop", False)
            if not isinstance(stop, bool):
                reasons.append(f"{ow}.stop: must be true or false")
            if nxt is not None:
                if nxt not in questions:
                    reasons.append(f"{ow}.next: no question {nxt!r}")
                elif not stop:
                    edges[qid].append(nxt)
            if (stop or nxt is None) and tier is None:
                reasons.append(f"{ow}: ends the interview without a tier")
            if stage in RED_FLAG_STAGES and tier is not None and (tier != "red" or not stop):
                reasons.append(f"{ow}: a red flag must be tier red with stop: true")
    start = data.get("start")
    if isinstance(start, str) and questions:
        if start not in questions:
            reasons.append(f"start: no question {start!r}")
        elif isinstance(questions[start], Mapping) and questions[start].get("stage") != "red_flags":
            reasons.append("start: the first question must be a red_flags question")
    for where, key in used:
        entry = texts.get(key)
        if not isinstance(entry, Mapping):
            reasons.append(f"{where}: no text {key!r} in texts")
            continue
        for code in all_langs:
            value = entry.get(code)
            if not isinstance(value, str) or not value.strip():
                reasons.append(f"texts.{key}: missing or empty in {code!r}")
    if reasons:
        return reasons
    cycle = _find_cycle(edges)
    if cycle:
        return [f"questions: cycle {' -> '.join(cycle)}"]
    reached = _reachable(str(start), edges)
    reasons += [f"questions.{q}: never asked (unreachable)" for q in questions if q not in reached]
    if reasons:
        return reasons
    return _check_paths(_build(data))


def _check_ask_if(
    where: str, q: Mapping[str, Any], questions: Mapping[str, Any], edges: list[str]
) -> list[str]:
    if "ask_if" not in q:
        if "otherwise" in q:
            return [f"{where}.otherwise: only meaningful with ask_if"]
        return []
    cond = q["ask_if"]
    if not isinstance(cond, Mapping) or len(cond) != 1:
        return [f"{where}.ask_if: must be one {{question: [option ids]}}"]
    reasons: list[str] = []
    ((other, allowed),) = cond.items()
    if other not in questions:
        reasons.append(f"{where}.ask_if: no question {other!r}")
    elif not isinstance(allowed, list) or not allowed:
        reasons.append(f"{where}.ask_if.{other}: must be a non-empty list of option ids")
    else:
        ids = {o.get("id") for o in questions[other].get("options") or [] if isinstance(o, Mapping)}
        reasons += [
            f"{where}.ask_if.{other}: {a!r} is not an option of {other}"
            for a in allowed
            if a not in ids
        ]
    otherwise = q.get("otherwise")
    if not isinstance(otherwise, str) or otherwise not in questions:
        reasons.append(f"{where}.otherwise: no question {otherwise!r} (required with ask_if)")
    else:
        edges.append(otherwise)
    return reasons


def _find_cycle(edges: Mapping[str, list[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in edges:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def _reachable(start: str, edges: Mapping[str, list[str]]) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for nxt in edges.get(todo.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _check_paths(protocol: TriageProtocol) -> list[str]:
    # Imported here: the engine builds on this module.
    from kiosk.triage.engine import TriageSession, all_paths

    reasons: list[str] = []
    for n, path in enumerate(all_paths(protocol)):
        if n >= MAX_PATHS:
            return [f"questions: more than {MAX_PATHS} paths; split the protocol"]
        session = TriageSession(protocol)
        for option_id in path:
            session.answer(option_id)
        if session.outcome is None:
            reasons.append(f"path {' > '.join(path)}: ends without a tier")
    return reasons


#: The sample protocol shipped with the kiosk (not clinically reviewed).
DEFAULT_PROTOCOL = Path(__file__).resolve().parent.parent / "data" / "triage" / "sample.yaml"


def iter_text_keys(protocol: TriageProtocol) -> Iterator[str]:
    """Every text key the protocol shows."""
    yield protocol.title
    yield protocol.disclaimer
    for q in protocol.questions.values():
        yield q.text
        for o in q.options:
            yield o.text


def check_protocol_file(path: Path | str, *, languages: list[str] | None = None) -> list[str]:
    """Every reason the protocol file at ``path`` cannot be used; [] if it can.

    The hook for a ``validate`` command: print the reasons, exit non-zero if any.
    """
    try:
        data = yamlfile.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        return [f"{path}: cannot read ({exc.strerror})"]
    except yaml.YAMLError as exc:
        return [f"{path}: not valid YAML ({exc})"]
    return validate_protocol(data, languages=languages)
