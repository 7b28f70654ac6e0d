"""The triage engine and protocol validator, and every path of the shipped sample protocol."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from kiosk.errors import TriageProtocolError, TriageStateError
from kiosk.i18n import Catalog
from kiosk.triage import (
    DEFAULT_PROTOCOL,
    Tier,
    TriageProtocol,
    TriageSession,
    all_paths,
    check_protocol_file,
    validate_protocol,
)
from kiosk.triage.protocol import RED_FLAG_STAGES


@pytest.fixture(scope="module")
def protocol() -> TriageProtocol:
    return TriageProtocol.load()


@pytest.fixture(scope="module")
def shipped_data() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_PROTOCOL.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _small() -> dict[str, Any]:
    """A minimal valid protocol, for breaking one thing at a time."""
    langs = ["en", "ja"]

    def t(text: str) -> dict[str, str]:
        return {"en": text, "ja": f"【{text}】"}

    return {
        "format": "machikado-triage",
        "version": 1,
        "id": "small",
        "revision": "1",
        "sample": True,
        "emergency_number": "119",
        "languages": langs,
        "title": "title",
        "disclaimer": "disclaimer",
        "start": "rf",
        "questions": {
            "rf": {
                "stage": "red_flags",
                "text": "q.rf",
                "options": [
                    {"id": "yes", "text": "o.yes", "tier": "red", "stop": True},
                    {"id": "no", "text": "o.no", "next": "age"},
                ],
            },
            "age": {
                "stage": "age_band",
                "text": "q.age",
                "options": [
                    {"id": "infant", "text": "o.infant", "next": "sym"},
                    {"id": "adult", "text": "o.adult", "next": "sym"},
                ],
            },
            "sym": {
                "stage": "symptom",
                "text": "q.sym",
                "options": [{"id": "fever", "text": "o.fever", "next": "baby"}],
            },
            "baby": {
                "stage": "modifier",
                "text": "q.baby",
                "ask_if": {"age": ["infant"]},
                "otherwise": "days",
                "options": [
                    {"id": "yes", "text": "o.yes", "tier": "yellow", "next": "days"},
                    {"id": "no", "text": "o.no", "next": "days"},
                ],
            },
            "days": {
                "stage": "modifier",
                "text": "q.days",
                "options": [
                    {"id": "yes", "text": "o.yes", "tier": "green"},
                    {"id": "no", "text": "o.no", "tier": "white"},
                ],
            },
        },
        "texts": {
            k: t(k)
            for k in [
                "title",
                "disclaimer",
                "q.rf",
                "q.age",
                "q.sym",
                "q.baby",
                "q.days",
                "o.yes",
                "o.no",
                "o.infant",
                "o.adult",
                "o.fever",
            ]
        },
    }


def _walk(protocol: TriageProtocol, path: list[str]) -> TriageSession:
    session = TriageSession(protocol)
    for option_id in path:
        session.answer(option_id)
    return session


# --- The shipped sample -----------------------------------------------------------------------


def test_the_shipped_protocol_is_valid_in_every_kiosk_language(shipped_data):
    codes = [lang.code for lang in Catalog.load().languages]
    assert validate_protocol(shipped_data, languages=codes) == []


def test_the_shipped_protocol_says_it_is_a_sample(protocol: TriageProtocol):
    assert protocol.sample is True
    assert "sample" in protocol.text("en", protocol.disclaimer)
    assert "見本" in protocol.text("ja", protocol.disclaimer)
    assert "NOT CLINICALLY REVIEWED" in DEFAULT_PROTOCOL.read_text(encoding="utf-8")


def test_the_shipped_protocol_has_the_triage_structure(protocol: TriageProtocol):
    start = protocol.question(protocol.start)
    assert start.stage == "red_flags"
    symptoms = [q for q in protocol.questions.values() if q.stage == "symptom"]
    assert len(symptoms) == 1
    assert 6 <= len(symptoms[0].options) <= 10
    assert {o.id for o in symptoms[0].options} >= {
        "fever", "headache", "chest_pain", "abdominal_pain", "breathing", "injury",
    }  # fmt: skip
    assert [q.stage for q in protocol.questions.values()].count("age_band") == 1


def test_every_path_of_the_shipped_protocol_ends_in_a_tier(protocol: TriageProtocol):
    paths = list(all_paths(protocol))
    assert len(paths) > 100
    seen_tiers = set()
    for path in paths:
        session = _walk(protocol, path)
        outcome = session.outcome
        assert session.done, path
        assert outcome is not None, path
        assert outcome.tier in Tier
        assert len(outcome.answers) == len(path)
        assert outcome.reasons
        assert all(a.tier is outcome.tier for a in outcome.reasons)
        expected = max((a.tier for a in outcome.answers if a.tier), key=lambda t: t.urgency)
        assert outcome.tier is expected, path
        seen_tiers.add(outcome.tier)
    assert seen_tiers == set(Tier)


def test_every_red_flag_of_the_shipped_protocol_ends_at_once_in_red_with_119(protocol):
    red_flag_hits = 0
    for path in all_paths(protocol):
        session = _walk(protocol, path)
        outcome = session.outcome
        assert outcome is not None
        flagged = [a for a in outcome.answers if a.stage in RED_FLAG_STAGES and a.tier is not None]
        if flagged:
            red_flag_hits += 1
            assert outcome.tier is Tier.RED
            assert outcome.answers[-1] == flagged[0], "nothing may be asked after a red flag"
            assert outcome.emergency_number == "119"
            assert outcome.is_emergency
        if outcome.tier is Tier.RED:
            assert flagged, "red is reached only through a red flag"
        else:
            assert outcome.emergency_number is None
    assert red_flag_hits > 10


def test_a_life_threatening_sign_on_the_first_screen_shows_119_at_once(protocol):
    session = TriageSession(protocol)
    session.answer("breathing")
    assert session.done
    outcome = session.outcome
    assert outcome is not None
    assert (outcome.tier, outcome.emergency_number) == (Tier.RED, "119")
    assert session.path_taken == ["rf_1"]


def test_a_fever_in_a_baby_asks_the_age_question_an_adult_never_sees(protocol):
    baby = _walk(protocol, ["none", "none", "infant", "fever", "no"])
    assert baby.current is not None
    assert baby.current.id == "fever_infant"
    adult = _walk(protocol, ["none", "none", "adult", "fever", "no"])
    assert adult.current is not None
    assert adult.current.id == "fever_mod"
    baby.answer("yes")
    baby.answer("no")
    baby.answer("no")
    outcome = baby.outcome
    assert outcome is not None
    assert outcome.tier is Tier.YELLOW
    assert [a.question_id for a in outcome.reasons] == ["fever_infant"]
    assert baby.age_band == "infant"
    assert baby.symptom == "fever"


def test_the_most_urgent_tier_reached_wins_over_a_milder_last_answer(protocol):
    session = _walk(protocol, ["none", "none", "adult", "headache", "no", "yes", "no"])
    outcome = session.outcome
    assert outcome is not None
    assert outcome.tier is Tier.YELLOW
    assert outcome.answers[-1].tier is Tier.WHITE


def test_back_undoes_the_last_answer_even_after_the_outcome(protocol):
    session = _walk(protocol, ["none", "none", "adult", "rash", "no", "no", "no"])
    assert (session.done, session.current) == (True, None)
    assert session.back()
    question = session.current
    assert question is not None
    assert question.id == "rash_days"
    assert session.done is False
    session.answer("yes")
    corrected = session.outcome
    assert corrected is not None
    assert corrected.tier is Tier.GREEN
    fresh = TriageSession(protocol)
    assert fresh.back() is False
    assert fresh.current is not None
    assert fresh.current.id == protocol.start


def test_answers_carry_text_keys_that_read_in_every_language(protocol):
    session = _walk(protocol, ["none", "none", "senior", "dizziness", "no", "no", "yes", "no"])
    outcome = session.outcome
    assert outcome is not None
    assert outcome.tier is Tier.YELLOW
    for lang in protocol.languages:
        lines = [
            (protocol.text(lang, a.question_text), protocol.text(lang, a.option_text))
            for a in outcome.answers
        ]
        assert all(q and o for q, o in lines)


def test_an_unknown_option_or_an_answer_after_the_end_is_refused(protocol):
    session = TriageSession(protocol)
    with pytest.raises(TriageStateError, match="no option 'maybe'"):
        session.answer("maybe")
    session.answer("unresponsive")
    with pytest.raises(TriageStateError, match="over"):
        session.answer("none")


# --- The validator ----------------------------------------------------------------------------


def test_the_small_protocol_is_valid_and_runs():
    protocol = TriageProtocol.from_data(_small())
    assert sorted(len(p) for p in all_paths(protocol)) == [1, 4, 4, 5, 5, 5, 5]


def _reasons(change) -> list[str]:
    data = copy.deepcopy(_small())
    change(data)
    return validate_protocol(data)


def test_a_cycle_is_refused():
    def loop(d):
        d["questions"]["days"]["options"][0] = {"id": "yes", "text": "o.yes", "next": "sym"}

    assert _reasons(loop) == ["questions: cycle sym -> baby -> days -> sym"]


def test_a_path_ending_without_a_tier_is_refused():
    def untiered(d):
        del d["questions"]["days"]["options"][1]["tier"]

    assert _reasons(untiered) == ["questions.days.options[1]: ends the interview without a tier"]


def test_references_to_missing_questions_and_texts_are_refused():
    def broken(d):
        d["questions"]["sym"]["options"][0]["next"] = "nowhere"
        d["questions"]["baby"]["ask_if"] = {"age": ["teen"]}
        d["questions"]["days"]["text"] = "q.gone"

    reasons = _reasons(broken)
    assert "questions.sym.options[0].next: no question 'nowhere'" in reasons
    assert "questions.baby.ask_if.age: 'teen' is not an option of age" in reasons
    assert "questions.days.text: no text 'q.gone' in texts" in reasons


def test_a_text_missing_in_one_language_is_refused():
    def untranslated(d):
        d["texts"]["q.days"]["ja"] = ""

    assert _reasons(untranslated) == ["texts.q.days: missing or empty in 'ja'"]
    assert validate_protocol(_small(), languages=["en", "vi"]) == [
        "languages: the kiosk needs 'vi', the protocol lacks it",
        *[f"texts.{k}: missing or empty in 'vi'" for k in _text_keys_in_use_order()],
    ]


def _text_keys_in_use_order() -> list[str]:
    keys = ["title", "disclaimer"]
    for q in _small()["questions"].values():
        keys.append(q["text"])
        keys += [o["text"] for o in q["options"]]
    return keys


def test_a_bad_tier_a_soft_red_flag_and_a_late_start_are_refused():
    def bad(d):
        d["questions"]["days"]["options"][0]["tier"] = "orange"
        d["questions"]["rf"]["options"][0]["stop"] = False
        d["questions"]["rf"]["options"][0]["next"] = "age"
        d["start"] = "age"

    reasons = _reasons(bad)
    assert "questions.days.options[0].tier: 'orange' is not red, yellow, green or white" in reasons
    assert "questions.rf.options[0]: a red flag must be tier red with stop: true" in reasons
    assert "start: the first question must be a red_flags question" in reasons


def test_an_unreachable_question_is_refused():
    def orphan(d):
        d["questions"]["lost"] = copy.deepcopy(d["questions"]["days"])

    assert _reasons(orphan) == ["questions.lost: never asked (unreachable)"]


def test_an_unknown_version_is_refused_before_anything_else():
    assert validate_protocol({**_small(), "version": 2}) == [
        "version: 2 is not supported (this kiosk reads version 1)"
    ]
    assert validate_protocol([1, 2]) == ["the file is not a mapping"]


def test_loading_a_bad_file_raises_with_every_reason(tmp_path: Path):
    data = _small()
    data["questions"]["days"]["options"][0]["tier"] = "orange"
    data["texts"]["q.days"]["en"] = ""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(TriageProtocolError) as err:
        TriageProtocol.load(path)
    assert len(err.value.reasons) == 2
    assert str(path) in str(err.value)
    assert check_protocol_file(path) == list(err.value.reasons)


def test_the_file_check_reports_unreadable_and_broken_yaml(tmp_path: Path):
    assert check_protocol_file(tmp_path / "none.yaml")[0].endswith(
        "cannot read (No such file or directory)"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("questions: [\n", encoding="utf-8")
    assert "not valid YAML" in check_protocol_file(broken)[0]
    assert check_protocol_file(DEFAULT_PROTOCOL) == []
