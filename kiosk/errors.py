"""Errors of the kiosk: translations, triage protocols, content packs."""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from pathlib import Path

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


def failure_of(exc: BaseException) -> dict[str, object]:
    """What failed and where, for a log line on the consultation path: the exception's type and
    its frames (file, line, function), never its message or arguments, which may hold a
    resident's answers or the doctor's reply.

    >>> def show(text):
    ...     raise ValueError(text)
    >>> try:
    ...     show("熱があります")
    ... except ValueError as exc:
    ...     failure_of(exc)["error_type"], failure_of(exc)["frames"][-1].endswith(" in show")
    ('ValueError', True)
    """
    frames = traceback.extract_tb(exc.__traceback__)
    return {
        "error_type": type(exc).__name__,
        "frames": [f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames],
    }
