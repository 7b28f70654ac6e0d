"""Errors of the kiosk: translations, triage protocols, content packs."""

from __future__ import annotations

from collections.abc import Sequence

from protocol.errors import MachikadoError


class KioskError(MachikadoError):
    """Root of kiosk errors."""


class _WithReasons(KioskError):
    """An error carrying every reason found, not just the first."""

    def __init__(self, what: str, reasons: Sequence[str]) -> None:
        self.reasons: tuple[str, ...] = tuple(reasons) or ("invalid",)
        super().__init__(f"{what}: " + "; ".join(self.reasons))


class TranslationError(_WithReasons):
    """A translation catalog that is incomplete or malformed, or a key that is missing.

    >>> str(TranslationError("catalog", ["en: missing key 'home.title'"]))
    "catalog: en: missing key 'home.title'"
    """


class TriageProtocolError(_WithReasons):
    """A triage protocol file that cannot be used; ``reasons`` lists every problem."""


class TriageStateError(KioskError):
    """A triage session used wrongly: an unknown option, or an answer after the end."""


class ContentPackError(_WithReasons):
    """A content pack that cannot be used; ``reasons`` lists every problem."""
