"""What one MQTT message means for the store: its points, or every reason it cannot be stored.

:func:`intake` is pure (no broker, no store), so the live collector and ``deadletter replay`` run
the very same checks: the topic, the contract (:func:`protocol.parse_envelope`, answered in plain
values by :func:`~protocol.codec.parse_envelope_lean`), the fleet manifest, that the topic's
node and the payload's node agree, and the node's budget (:mod:`cloud.collector.budget`; the
one state it keeps: what each node has in the store). A data envelope from a known node first
tries the one-pass line path (:class:`~cloud.collector.lines.LineWriter`), which takes only
what those checks take, with the same lines; anything else goes the full way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Literal

from cloud.collector.budget import Shape, Usage
from cloud.collector.lines import LineWriter
from cloud.collector.points import (
    EnvelopePoints,
    PointsLater,
    birth_fields,
    envelope_lines,
    fleet_point,
)
from cloud.fleet import UNASSIGNED_NODE, Assignment, Fleet
from cloud.store.base import Point
from protocol import (
    OFFLINE,
    ONLINE,
    Birth,
    InvalidMessage,
    InvalidTopic,
    Topics,
    parse_message,
)
from protocol.codec import parse_envelope_lean, time_us
from protocol.limits import DEFAULT_LIMITS, STREAM_ID, Budget, Limits

UnknownNodes = Literal["reject", "accept"]
UNKNOWN_NODE = "unknown node"
_WHERE_CACHE_MAX = 100_000


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message whose points can be written; ``seq`` is set for data envelopes."""

    points: Sequence[Point]
    node: str
    stream: str | None = None
    seq: int | None = None
    #: A ``fleet_state`` point saying the node was seen (data only; one per node per batch).
    seen: Point | None = None
    #: ``points`` as line protocol (``encode_points(points)``), when written without them.
    lines: bytes | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message for the dead-letter store, with what could be read of who sent it."""

    reasons: tuple[str, ...]
    node: str | None = None
    stream: str | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A message that carries nothing to store (a retained message being cleared)."""

    why: str


Outcome = Accepted | Rejected | Ignored


@dataclass(frozen=True)
class Intake:
    """The checks of one collector: topic prefix, manifest, unknown-node policy, limits.

    >>> from datetime import UTC
    >>> take = Intake(Topics("machikado"), Fleet(), unknown_nodes="reject")
    >>> take("machikado/v1/rr-01/state", b"online", datetime.now(UTC)).reasons
    ('unknown node',)
    """

    topics: Topics
    fleet: Fleet
    unknown_nodes: UnknownNodes = "reject"
    limits: Limits = field(default=DEFAULT_LIMITS)
    #: What each node has in the store, against its budget in the manifest; seed it from the
    #: store before the first message (:meth:`~cloud.collector.budget.Usage.seed_from`).
    usage: Usage = field(default_factory=Usage, repr=False, compare=False)
    #: False: every data envelope goes the full way (to compare the two in tests).
    line_path: bool = True
    #: Node -> assignment, looked up once per node (the manifest is fixed while running).
    _where_cache: dict[str, Assignment | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    #: Node -> budget, looked up once per node.
    _budgets: dict[str, Budget] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: Data envelopes' line protocol in one pass, for the plainly valid ones.
    _line_writer: LineWriter = field(init=False, repr=False, compare=False)

    def __call__(self, topic: str, payload: bytes, received_at: datetime) -> Outcome:
        try:
            parts = self.topics.parse(topic)
        except InvalidTopic as exc:
            return Rejected((str(exc),))
        node = parts.node
        if parts.kind == "data" and not parts.rest:
            return self._data(node, payload, received_at)
        if parts.kind == "birth" and not parts.rest:
            return self._birth(node, payload, received_at)
        if parts.kind == "state" and not parts.rest:
            return self._state(node, payload, received_at)
        return Rejected((f"topic {topic!r}: the collector does not take {parts.kind!r}",), node)

    def _where(self, node: str) -> Assignment | None:
        cache = self._where_cache
        if node in cache:
            return cache[node]
        where = self.fleet.assignment(node)
        if where is None and self.unknown_nodes == "accept":
            where = UNASSIGNED_NODE
        if len(cache) < _WHERE_CACHE_MAX:  # topics name any node: keep the cache bounded
            cache[node] = where
        return where

    def __post_init__(self) -> None:
        object.__setattr__(self, "_line_writer", LineWriter(self.limits, self._within_budget))

    def _budget(self, node: str) -> Budget:
        budgets = self._budgets
        budget = budgets.get(node)
        if budget is None:
            budget = self.fleet.budget(node)
            if len(budgets) < _WHERE_CACHE_MAX:
                budgets[node] = budget
        return budget

    def _over_budget(self, node: str, shapes: list[Shape]) -> tuple[str, ...]:
        """Why ``shapes`` do not fit ``node``'s budget; none: they are counted now."""
        return self.usage.admit(node, self._budget(node), shapes)

    def _within_budget(self, node: str, shapes: list[Shape]) -> bool:
        return not self._over_budget(node, shapes)

    def _data(self, node: str, payload: bytes, received_at: datetime) -> Outcome:
        where = self._where(node)
        if where is not None and self.line_path:
            received_us = time_us(received_at)
            fast = self._line_writer.lines(payload, node, where, received_us, received_us)
            if fast is not None:
                return Accepted(
                    PointsLater(
                        fast.points, partial(self._points, payload, node, where, received_at)
                    ),
                    node,
                    fast.stream,
                    fast.seq,
                    seen=fleet_point(node, where, {"stream": fast.stream}, received_at),
                    lines=fast.lines,
                )
        try:
            env = parse_envelope_lean(payload, topic_node=node, now=received_at, limits=self.limits)
        except InvalidMessage as exc:
            stream, seq = _stream_and_seq(payload, self.limits)
            return Rejected(exc.reasons, node, stream, seq)
        if where is None:
            return Rejected((UNKNOWN_NODE,), node, env.stream, env.seq)
        over = self._over_budget(
            node, [(m, sensor, tuple(tags.items())) for m, _at, sensor, tags, _f in env.readings]
        )
        if over:
            return Rejected(over, node, env.stream, env.seq)
        return Accepted(
            EnvelopePoints(env, where, received_at),
            node,
            env.stream,
            env.seq,
            seen=fleet_point(node, where, {"stream": env.stream}, received_at),
            lines=envelope_lines(env, where, time_us(received_at)),
        )

    def _points(
        self, payload: bytes, node: str, where: Assignment, received_at: datetime
    ) -> list[Point]:
        # Only for a message the line path took, which the full parse takes too.
        env = parse_envelope_lean(payload, topic_node=node, now=received_at, limits=self.limits)
        return list(EnvelopePoints(env, where, received_at))

    def _birth(self, node: str, payload: bytes, received_at: datetime) -> Outcome:
        if not payload:
            return Ignored("retained birth cleared")
        try:
            birth = parse_message(Birth, payload)
        except InvalidMessage as exc:
            return Rejected(exc.reasons, node)
        if birth.node != node:
            return Rejected(
                (f"node: payload says {birth.node!r} but the topic says {node!r}",), node
            )
        where = self._where(node)
        if where is None:
            return Rejected((UNKNOWN_NODE,), node)
        return Accepted([fleet_point(node, where, birth_fields(birth), received_at)], node)

    def _state(self, node: str, payload: bytes, received_at: datetime) -> Outcome:
        if not payload:
            return Ignored("retained state cleared")
        if payload not in (ONLINE, OFFLINE):
            shown = payload[:32].decode("utf-8", errors="replace")
            return Rejected((f"state: {shown!r} is neither 'online' nor 'offline'",), node)
        where = self._where(node)
        if where is None:
            return Rejected((UNKNOWN_NODE,), node)
        online = payload == ONLINE
        return Accepted([fleet_point(node, where, {"online": online}, received_at)], node)


def _stream_and_seq(payload: bytes, limits: Limits) -> tuple[str | None, int | None]:
    """Stream and seq of an envelope that failed validation, when they can still be read."""
    if len(payload) > limits.max_payload_bytes:
        return None, None
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    stream, seq = data.get("stream"), data.get("seq")
    if not (isinstance(stream, str) and STREAM_ID.fullmatch(stream)):
        return None, None
    if not (type(seq) is int and 1 <= seq < 2**63):
        return stream, None
    return stream, seq
