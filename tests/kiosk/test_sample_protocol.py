"""The shipped sample triage protocol: answers listed for a doctor can be told apart."""

from __future__ import annotations

from kiosk.triage import TriageProtocol


def test_no_two_questions_of_the_sample_share_a_wording_in_any_language() -> None:
    protocol = TriageProtocol.load()
    for lang in protocol.languages:
        seen: dict[str, str] = {}
        for qid in protocol.questions:
            text = protocol.text(lang, protocol.question(qid).text)
            assert text not in seen, f"{lang}: questions {seen.get(text)} and {qid} read {text!r}"
            seen[text] = qid
