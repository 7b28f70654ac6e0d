"""Encoding and validating messages on the wire.

:func:`parse_envelope` is what the cloud runs on every data message: it returns the envelope or
raises :class:`~protocol.errors.InvalidMessage` carrying every reason the message is wrong, so a
dead-letter record can say all of them at once. :func:`encode_envelope` is the node's fast path:
the outbox keeps each envelope's readings as JSON already, and sending only wraps them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from protocol.errors import InvalidMessage
from protocol.limits import DEFAULT_LIMITS, Limits
from protocol.messages import Envelope, Reading, V, format_time

M = TypeVar("M", bound=BaseModel)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (the key)"
        else:
            out += f".{part}" if out else part
    return out or "message"


def reasons_of(exc: ValidationError) -> list[str]:
    """Turn pydantic's errors into ``where: what`` lines."""
    reasons = []
    for err in exc.errors(include_url=False, include_input=False):
        msg = err["msg"].removeprefix("Value error, ")
        reasons.append(f"{_loc(err['loc'])}: {msg}")
    return reasons


def parse_envelope(
    payload: bytes,
    *,
    topic_node: str | None = None,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Envelope:
    """Validate a data message against the contract, and the topic it came on.

    ``now`` is the receiver's clock, for the accepted skew; ``topic_node`` the node id from the
    topic, which must equal the payload's.
    """
    if len(payload) > limits.max_payload_bytes:
        raise InvalidMessage(
            [f"payload is {len(payload)} bytes, more than {limits.max_payload_bytes}"]
        )
    try:
        envelope = Envelope.model_validate_json(payload)
    except ValidationError as exc:
        raise InvalidMessage(reasons_of(exc)) from None
    reasons: list[str] = []
    if topic_node is not None and envelope.node != topic_node:
        reasons.append(f"node: payload says {envelope.node!r} but the topic says {topic_node!r}")
    now = now or datetime.now(UTC)
    newest = now + limits.max_future_skew
    oldest = now - limits.max_age
    for i, r in enumerate(envelope.readings):
        if r.at > newest:
            reasons.append(
                f"readings[{i}].at: {format_time(r.at)} is more than "
                f"{limits.max_future_skew} ahead of the receiver's clock"
            )
        elif r.at < oldest:
            reasons.append(f"readings[{i}].at: {format_time(r.at)} is older than {limits.max_age}")
    if envelope.sent_at > newest:
        reasons.append(f"sent_at: {format_time(envelope.sent_at)} is in the future")
    if reasons:
        raise InvalidMessage(reasons)
    return envelope


def parse_message(model: type[M], payload: bytes) -> M:
    """Validate a birth, receipt or other JSON message; every reason in the error."""
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise InvalidMessage(reasons_of(exc)) from None


def encode_readings(readings: Sequence[Reading]) -> bytes:
    """The readings of one envelope as a JSON array, as the outbox stores them."""
    return b"[" + b",".join(r.model_dump_json().encode() for r in readings) + b"]"


def encode_envelope(
    *, node: str, stream: str, seq: int, sent_at: datetime, readings_json: bytes
) -> bytes:
    """Wrap stored readings into a data envelope without parsing them again.

    ``node`` and ``stream`` come from the node's own validated config and outbox.
    """
    head = json.dumps(
        {"v": V, "node": node, "stream": stream, "seq": seq, "sent_at": format_time(sent_at)},
        separators=(",", ":"),
    )
    return head[:-1].encode() + b',"readings":' + readings_json + b"}"
