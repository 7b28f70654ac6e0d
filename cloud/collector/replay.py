"""Replaying dead letters: check each stored payload again and write what now passes.

A message lands in the dead-letter store because it broke the contract, came from a node the
manifest did not list, or the store refused it. After a fix (the node added to the manifest, a
limit changed with the contract), :func:`replay` runs the live collector's very checks on each
record, as of the time it was received, writes what passes and marks it replayed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import structlog

from cloud.collector.batch import Abandoned, BatchWriter
from cloud.collector.intake import Accepted, Intake, Rejected
from cloud.config import CollectorConfig
from cloud.deadletter import DeadLetters
from cloud.errors import PointsRejected
from cloud.fleet import Fleet
from cloud.store.base import Store

log = structlog.get_logger(__name__)


def replay(
    cfg: CollectorConfig,
    fleet: Fleet,
    store: Store,
    dead_letters: DeadLetters,
    ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Replay the given records (default: every one not replayed yet); say what became of each.

    Returns ``{"replayed": [id...], "still_rejected": {id: [reason...]}, "skipped": {id: why}}``.
    """
    intake = Intake(cfg.mqtt.topics, fleet, unknown_nodes=cfg.fleet.unknown_nodes)
    intake.usage.seed_from(store)
    give_up = threading.Event()
    # A command run by a person: wait for a store that is down, but not forever.
    timer = threading.Timer(max(cfg.retry.max_s * 3, 10.0), give_up.set)
    timer.daemon = True
    timer.start()
    writer = BatchWriter(
        store, dead_letters, initial_s=cfg.retry.initial_s, max_s=cfg.retry.max_s, give_up=give_up
    )
    records = (
        [dead_letters.get(i) for i in ids]
        if ids
        else dead_letters.records(pending_only=True, limit=1_000_000)
    )
    replayed: list[int] = []
    still: dict[int, list[str]] = {}
    skipped: dict[int, str] = {}
    try:
        for rec in records:
            if rec.replayed_at is not None:
                skipped[rec.id] = f"replayed already at {rec.replayed_at.isoformat()}"
                continue
            if not rec.complete:
                skipped[rec.id] = (
                    f"only {len(rec.payload)} of {rec.payload_len} payload bytes were kept"
                )
                continue
            outcome = intake(rec.topic, rec.payload, rec.received_at)
            if isinstance(outcome, Rejected):
                still[rec.id] = list(outcome.reasons)
                continue
            if isinstance(outcome, Accepted):
                try:
                    writer.write_points(outcome.points)
                except PointsRejected as exc:
                    still[rec.id] = list(exc.reasons)
                    continue
            dead_letters.mark_replayed(rec.id)
            replayed.append(rec.id)
            log.info("dead_letter_replayed", record=rec.id, node=rec.node, topic=rec.topic)
    except Abandoned as exc:
        log.error("replay_abandoned", reason=str(exc), replayed=len(replayed))
        skipped.update(
            {
                r.id: "store unavailable"
                for r in records
                if r.id not in replayed and r.id not in still and r.id not in skipped
            }
        )
    finally:
        timer.cancel()
    return {
        "replayed": replayed,
        "still_rejected": {str(k): v for k, v in still.items()},
        "skipped": {str(k): v for k, v in skipped.items()},
    }
