"""Completeness: per node and stream, which seqs the store holds and which are missing.

It is computed from the ``link`` points in the store (one per data message delivered, see
:mod:`cloud.collector.points`), not from a collector's memory, so it stays right with several
collectors sharing a subscription and across restarts. A node numbers its envelopes 1, 2, 3 ...
within a stream and never reuses a seq, so every hole between the first and the last seq seen is
an envelope that has not arrived (yet).

>>> [s.to_json() for s in completeness({("rr-01", "s1"): {1, 2, 5, 6, 9}})]
... # doctest: +NORMALIZE_WHITESPACE
[{'node': 'rr-01', 'stream': 's1', 'first': 1, 'last': 9, 'received': 5,
  'missing': [[3, 4], [7, 8]], 'missing_count': 4}]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from protocol.messages import SeqRange, to_ranges


@dataclass(frozen=True, slots=True)
class StreamCompleteness:
    """What the store holds of one stream of one node."""

    node: str
    stream: str
    first: int
    last: int
    received: int
    missing: tuple[SeqRange, ...]

    @property
    def missing_count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.missing)

    @property
    def complete(self) -> bool:
        return not self.missing

    def to_json(self) -> dict[str, object]:
        return {
            "node": self.node,
            "stream": self.stream,
            "first": self.first,
            "last": self.last,
            "received": self.received,
            "missing": [[lo, hi] for lo, hi in self.missing],
            "missing_count": self.missing_count,
        }


def gaps(seqs: Iterable[int], *, start: int | None = None) -> list[SeqRange]:
    """Inclusive ranges of the seqs absent between ``start`` (default: the lowest) and the highest.

    >>> gaps([2, 3, 7])
    [(4, 6)]
    >>> gaps([2, 3, 7], start=1)
    [(1, 1), (4, 6)]
    """
    out: list[SeqRange] = []
    ranges = to_ranges(seqs)
    if not ranges:
        return out
    expected = ranges[0][0] if start is None else start
    for lo, hi in ranges:
        if lo > expected:
            out.append((expected, lo - 1))
        expected = max(expected, hi + 1)
    return out


def completeness(
    link_seqs: Mapping[tuple[str, str], Iterable[int]], *, from_one: bool = False
) -> list[StreamCompleteness]:
    """Per (node, stream), sorted: first and last seq, how many received, the missing ranges.

    ``from_one`` counts seqs below the first one seen as missing too: right when the store was
    asked about the stream's whole life, not about a time window that may start mid-stream.
    """
    out = []
    for (node, stream), seqs in sorted(link_seqs.items()):
        held = set(seqs)
        if not held:
            continue
        out.append(
            StreamCompleteness(
                node=node,
                stream=stream,
                first=min(held),
                last=max(held),
                received=len(held),
                missing=tuple(gaps(held, start=1 if from_one else None)),
            )
        )
    return out
