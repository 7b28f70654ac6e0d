"""Errors of the cloud side."""

from __future__ import annotations

from collections.abc import Sequence

from protocol.errors import MachikadoError


class CloudError(MachikadoError):
    """Root of the cloud side's errors."""


class ConfigError(CloudError):
    """A collector config or fleet manifest that cannot be used; names the key and the problem."""


class StoreError(CloudError):
    """The store failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or did not confirm the write: try again later, keep the data."""


class PointsRejected(StoreError):
    """The store refused points for what they are (not for being unreachable): every reason.

    Retrying cannot help; the messages holding them go to the dead-letter store.
    """

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons: tuple[str, ...] = tuple(reasons) or ("points rejected",)
        super().__init__("; ".join(self.reasons))


class CheckerFailed(CloudError):
    """The collector's checking process failed or died: the batch it held is not acked."""
