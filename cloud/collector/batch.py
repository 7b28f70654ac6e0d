"""A batch of received messages, and how it becomes durable: store write or dead letter.

:class:`BatchWriter` knows nothing of MQTT. It writes a batch's points with retries while the
store is unavailable; when the store refuses points, it writes message by message to find the
ones it refuses and dead-letters those with the store's reasons. When :meth:`BatchWriter.write`
returns, every message of the batch is either in the store or in the dead-letter store, and the
caller may ack all of them and send receipts.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar, runtime_checkable

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_random_exponential,
)

from cloud.collector.intake import Accepted, Ignored, Outcome, Rejected
from cloud.deadletter import DeadLetters, printable
from cloud.errors import PointsRejected, StoreUnavailable
from cloud.store.base import Point, Store
from cloud.store.lineprotocol import encode_points

log = structlog.get_logger(__name__)
_W = TypeVar("_W")
#: Reasons a dead-letter log line shows, and characters of each.
_LOG_REASONS = 3
_LOG_REASON_CHARS = 200


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars] + "..."


@dataclass(frozen=True, slots=True)
class Received:
    """One message as it came from the broker: what it says, and what acks it.

    ``session`` counts the collector's connections: a message from an earlier connection is
    not acked on a later one (the broker redelivers it there, and it is written again).
    """

    topic: str
    payload: bytes
    received_at: datetime
    mid: int = 0
    qos: int = 0
    session: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    """A received message and what the checks made of it (:class:`~cloud.collector.Intake`)."""

    topic: str
    payload: bytes
    received_at: datetime
    outcome: Outcome
    mid: int = 0
    qos: int = 0
    session: int = 0


#: Every reading of a data envelope has one ``"m":`` key: the points a message will make (its
#: readings and its link point) are counted without parsing it. A text field's ``"m":`` only
#: makes a batch close early.
_READING_MARK = b'"m":'


@dataclass
class Batch:
    """Received messages waiting to be checked and written together, in the order they came.

    ``points`` counts the points they will make, to bound a write.
    """

    messages: list[Received] = field(default_factory=list)
    points: int = 0
    opened_at: float = 0.0

    def add(self, message: Received, now: float) -> None:
        if not self.messages:
            self.opened_at = now
        self.messages.append(message)
        self.points += message.payload.count(_READING_MARK) + 1

    def __len__(self) -> int:
        return len(self.messages)


@dataclass
class Written:
    """What a batch write did: seqs now held per (node, stream), and counters."""

    seqs: dict[tuple[str, str], set[int]] = field(default_factory=lambda: defaultdict(set))
    points: int = 0
    stored: int = 0
    dead_lettered: int = 0
    #: Of those, kept brief (their node was past its rate of full dead letters).
    dead_lettered_brief: int = 0
    #: Older dead letters dropped to keep the dead-letter store within its total cap.
    dead_letters_dropped: int = 0
    ignored: int = 0


@runtime_checkable
class LineStore(Protocol):
    """A store that also takes line protocol its caller encoded (``InfluxV1Store``)."""

    def write_lines(self, bodies: Sequence[bytes]) -> None:
        """Like ``write``, for bodies of whole lines (each as ``encode_points`` makes them)."""
        ...


class Abandoned(Exception):
    """The collector is stopping and gave up waiting for the store; nothing was acked."""


class BatchWriter:
    """Turns batches into durable writes.

    >>> # writer = BatchWriter(store, dead_letters, initial_s=0.5, max_s=30)
    >>> # written = writer.write(batch)   # blocks, retrying, while the store is down
    """

    def __init__(
        self,
        store: Store,
        dead_letters: DeadLetters,
        *,
        initial_s: float,
        max_s: float,
        give_up: threading.Event | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self.initial_s, self.max_s = initial_s, max_s
        #: Set when waiting for the store must end (a drain that timed out).
        self.give_up = give_up or threading.Event()
        #: Called once per retry while the store is unavailable.
        self.on_retry = on_retry
        #: Set when the store takes line protocol: messages that carry their lines skip points.
        self._line_store = store if isinstance(store, LineStore) else None

    def write(self, messages: Sequence[Message]) -> Written:
        """Make every one of ``messages`` durable; raise :class:`Abandoned` if told to give up."""
        done = Written()
        accepted: list[Message] = []
        seen: dict[str, Point] = {}
        for msg in messages:
            out = msg.outcome
            if isinstance(out, Accepted):
                accepted.append(msg)
                if out.seen is not None:
                    seen[out.node] = out.seen  # the newest per node is enough
            elif isinstance(out, Rejected):
                self._dead_letter(msg, out.reasons, done)
            else:
                done.ignored += 1
        try:
            self._write_accepted(accepted, list(seen.values()))
        except PointsRejected as exc:
            log.warning("batch_rejected_isolating", messages=len(accepted), reasons=exc.reasons)
            accepted = self._isolate(accepted, done)
            self._write_quietly(list(seen.values()))
        done.points += sum(len(_accepted(m).points) for m in accepted)
        for msg in accepted:
            out = _accepted(msg)
            done.stored += 1
            if out.stream is not None and out.seq is not None:
                done.seqs[(out.node, out.stream)].add(out.seq)
        return done

    # -- inside -------------------------------------------------------------------------------

    def _write_accepted(self, accepted: list[Message], seen: list[Point]) -> None:
        """One write of every accepted message's points and the ``seen`` points."""
        bodies = self._bodies(accepted, seen)
        if bodies is not None:
            self._retrying(self._write_lines, bodies)
            return
        self.write_points([p for m in accepted for p in _accepted(m).points] + seen)

    def _bodies(self, accepted: list[Message], seen: list[Point]) -> list[bytes] | None:
        """The batch as line protocol when the store takes it and every message has its lines."""
        if self._line_store is None:
            return None
        bodies = []
        for msg in accepted:
            lines = _accepted(msg).lines
            if lines is None:
                return None
            bodies.append(lines)
        if seen:
            try:
                bodies.append(encode_points(seen))
            except PointsRejected:
                return None  # the point path says so, and isolates
        return bodies

    def _write_lines(self, bodies: list[bytes]) -> None:
        assert self._line_store is not None
        self._line_store.write_lines(bodies)

    def _isolate(self, accepted: list[Message], done: Written) -> list[Message]:
        """Write message by message; dead-letter each the store refuses; return the stored."""
        stored = []
        for msg in accepted:
            try:
                self.write_points(_accepted(msg).points)
            except PointsRejected as exc:
                self._dead_letter(msg, exc.reasons, done)
            else:
                stored.append(msg)
        return stored

    def _write_quietly(self, points: list[Point]) -> None:
        # fleet_state "seen" points come from messages that are stored anyway; one the store
        # refuses is not worth a dead letter of its own.
        if not points:
            return
        try:
            self.write_points(points)
        except PointsRejected as exc:
            log.warning("fleet_state_rejected", points=len(points), reasons=exc.reasons)

    def write_points(self, points: Sequence[Point]) -> None:
        """Write points, retrying while the store is unavailable; PointsRejected passes through."""
        if not points:
            return
        self._retrying(self.store.write, points)

    def _retrying(self, write: Callable[[_W], None], what: _W) -> None:
        retrying = Retrying(
            retry=retry_if_exception_type(StoreUnavailable),
            # Full jitter, so collectors sharing a subscription do not hammer a store that comes
            # back all at the same instant.
            wait=wait_random_exponential(
                multiplier=self.initial_s, min=self.initial_s, max=self.max_s
            ),
            stop=lambda _state: self.give_up.is_set(),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            retrying(write, what)
        except StoreUnavailable as exc:
            raise Abandoned(str(exc)) from exc

    def _sleep(self, seconds: float) -> None:
        # Waiting on the give-up event, not time.sleep: a drain deadline ends the wait at once.
        self.give_up.wait(seconds)

    def _before_sleep(self, state: RetryCallState) -> None:
        if self.on_retry is not None:
            self.on_retry()
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "store_unavailable_retrying",
            store=self.store.name,
            attempt=state.attempt_number,
            wait_s=round(wait, 2),
            error=str(exc),
        )

    def _dead_letter(self, msg: Message, reasons: tuple[str, ...], done: Written) -> None:
        out = msg.outcome
        node = stream = None
        seq = None
        if isinstance(out, Accepted | Rejected):
            node, stream, seq = out.node, out.stream, out.seq
        kept = self.dead_letters.keep(
            topic=msg.topic,
            payload=msg.payload,
            reasons=reasons,
            node=node,
            stream=stream,
            seq=seq,
            received_at=msg.received_at,
        )
        done.dead_lettered += 1
        done.dead_lettered_brief += kept.kept == "brief"
        done.dead_letters_dropped += kept.dropped
        # One line per message, whatever it holds: how many reasons, and the first few.
        log.warning(
            "message_dead_lettered",
            node=node,
            topic=printable(msg.topic),
            stream=stream,
            seq=seq,
            reasons_count=len(reasons),
            reasons=[printable(_cut(r, _LOG_REASON_CHARS)) for r in reasons[:_LOG_REASONS]],
            record=kept.id,
            kept=kept.kept,
        )
        if kept.dropped:
            log.warning("dead_letters_dropped", records=kept.dropped, why="total cap reached")
        # A receipt for it too: the message is held (replayably) in the dead-letter store, and
        # a node resending it forever would only fill its own outbox and the dead-letter count.
        if node is not None and stream is not None and seq is not None:
            done.seqs[(node, stream)].add(seq)


def _accepted(msg: Message) -> Accepted:
    out = msg.outcome
    assert isinstance(out, Accepted)
    return out


__all__ = ["Abandoned", "Batch", "BatchWriter", "Ignored", "Message", "Received", "Written"]
