"""The project's one root error, and the protocol's own errors.

Every package roots its exception hierarchy in :class:`MachikadoError`, so a command-line entry
point can catch one type and print a one-line message instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class MachikadoError(Exception):
    """Root of every error this project raises on purpose."""


class ProtocolError(MachikadoError):
    """Something breaks the wire contract."""


class InvalidMessage(ProtocolError):
    """A message that breaks the contract, with every reason found (not just the first).

    >>> err = InvalidMessage(["readings[0].m: too long", "seq: must be >= 1"])
    >>> str(err)
    'readings[0].m: too long; seq: must be >= 1'
    """

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons: tuple[str, ...] = tuple(reasons) or ("invalid message",)
        super().__init__("; ".join(self.reasons))


class InvalidTopic(ProtocolError):
    """A topic that is not one of the contract's topics."""
