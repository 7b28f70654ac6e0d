"""The wire contract v1 every other part shares: topics, messages, limits and their validation.

This package imports nothing of ours; everything else imports it. Its names are loaded on
first use (PEP 562), so that ``import protocol.errors`` alone, as every error module does,
costs no pydantic import: the kiosk needs its errors before its first frame, its models after.

>>> from protocol import Topics
>>> Topics("machikado").birth("rr-01")
'machikado/v1/rr-01/birth'
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protocol.codec import encode_envelope, encode_readings, parse_envelope, parse_message
    from protocol.errors import InvalidMessage, InvalidTopic, MachikadoError, ProtocolError
    from protocol.limits import DEFAULT_LIMITS, Limits
    from protocol.messages import (
        OFFLINE,
        ONLINE,
        Birth,
        Envelope,
        Reading,
        Receipt,
        V,
        format_time,
        to_ranges,
    )
    from protocol.topics import TopicParts, Topics

#: Each public name and the module that defines it.
_HOME: dict[str, str] = {
    "encode_envelope": "protocol.codec",
    "encode_readings": "protocol.codec",
    "parse_envelope": "protocol.codec",
    "parse_message": "protocol.codec",
    "InvalidMessage": "protocol.errors",
    "InvalidTopic": "protocol.errors",
    "MachikadoError": "protocol.errors",
    "ProtocolError": "protocol.errors",
    "DEFAULT_LIMITS": "protocol.limits",
    "Limits": "protocol.limits",
    "OFFLINE": "protocol.messages",
    "ONLINE": "protocol.messages",
    "Birth": "protocol.messages",
    "Envelope": "protocol.messages",
    "Reading": "protocol.messages",
    "Receipt": "protocol.messages",
    "V": "protocol.messages",
    "format_time": "protocol.messages",
    "to_ranges": "protocol.messages",
    "TopicParts": "protocol.topics",
    "Topics": "protocol.topics",
}

__all__ = [
    "DEFAULT_LIMITS",
    "OFFLINE",
    "ONLINE",
    "Birth",
    "Envelope",
    "InvalidMessage",
    "InvalidTopic",
    "Limits",
    "MachikadoError",
    "ProtocolError",
    "Reading",
    "Receipt",
    "TopicParts",
    "Topics",
    "V",
    "encode_envelope",
    "encode_readings",
    "format_time",
    "parse_envelope",
    "parse_message",
    "to_ranges",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use and kept here after."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'protocol' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
