"""The wire contract v1 every other part shares: topics, messages, limits and their validation.

This package imports nothing of ours; everything else imports it.
"""

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
