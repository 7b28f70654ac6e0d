"""Triage: the protocol file format and validator, and the interview engine."""

from kiosk.triage.engine import Answer, Outcome, TriageSession, all_paths
from kiosk.triage.protocol import (
    DEFAULT_PROTOCOL,
    Option,
    Question,
    Tier,
    TriageProtocol,
    check_protocol_file,
    validate_protocol,
)

__all__ = [
    "DEFAULT_PROTOCOL",
    "Answer",
    "Option",
    "Outcome",
    "Question",
    "Tier",
    "TriageProtocol",
    "TriageSession",
    "all_paths",
    "check_protocol_file",
    "validate_protocol",
]
