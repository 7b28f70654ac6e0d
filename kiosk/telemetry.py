"""Anonymous usage telemetry of the kiosk: one ``kiosk_session`` reading per resident's session.

The reading says how the kiosk was used, never by whom or about what: the language and the
most urgent triage tier become tags (few values, so the staff web app can count by them); how
long, the screens passed through, the information categories viewed and a few switches become
fields. Answers, tickets, codes and replies have no key here, and a summary holding any key not
listed in :data:`FIELDS` or :data:`TAGS` is refused rather than sent.

>>> from datetime import UTC, datetime
>>> r = session_reading({"language": "vi", "duration_s": 73.2, "path": "language>home>info",
...                      "tier": "", "info_categories": "health,waste"},
...                     at=datetime(2026, 11, 26, 7, 0, tzinfo=UTC))
>>> r.m, r.tags, r.fields["path"]
('kiosk_session', {'language': 'vi'}, 'language>home>info')
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime

from pydantic import ValidationError

from kiosk.errors import KioskError
from protocol.limits import DEFAULT_LIMITS
from protocol.messages import Reading

MEASUREMENT = "kiosk_session"
#: Summary keys that become tags, and the values they may take.
TAGS: dict[str, re.Pattern[str]] = {
    "language": re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"),
    "tier": re.compile(r"^(red|yellow|green|white)$"),
}
#: Summary keys that become fields, with the type each must have.
FIELDS: dict[str, type] = {
    "duration_s": float,
    "path": str,
    "info_categories": str,
    "items_viewed": int,
    "consult_requested": bool,
    "large_text": bool,
    "high_contrast": bool,
}
_MAX_TEXT = DEFAULT_LIMITS.max_string_field


class TelemetryError(KioskError):
    """A session summary that cannot be sent as anonymous telemetry; says which key and why."""


def _field(key: str, value: object) -> bool | int | float | str:
    want = FIELDS[key]
    if want is float and isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if not math.isfinite(number) or number < 0:
            raise TelemetryError(f"session summary: {key} is {value!r}, not a duration")
        return round(number, 3)
    if want is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if want is bool and isinstance(value, bool):
        return value
    if want is str and isinstance(value, str):
        # Screen names and category ids, so cutting a long one loses nothing a person wrote.
        return value if len(value) <= _MAX_TEXT else value[: _MAX_TEXT - 1] + "…"
    raise TelemetryError(
        f"session summary: {key} must be a {want.__name__}, not {type(value).__name__}"
    )


def session_reading(summary: Mapping[str, object], *, at: datetime) -> Reading:
    """The ``kiosk_session`` reading of one session's summary (``KioskSession.summary()``)."""
    unknown = sorted(set(summary) - set(TAGS) - set(FIELDS))
    if unknown:
        raise TelemetryError(
            f"session summary has keys telemetry does not send: {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted({*TAGS, *FIELDS}))})"
        )
    if "duration_s" not in summary:
        raise TelemetryError("session summary has no duration_s")
    tags: dict[str, str] = {}
    for key, pattern in TAGS.items():
        value = summary.get(key, "")
        if value in ("", None):
            continue  # no language chosen, no tier reached: the tag is left out
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise TelemetryError(f"session summary: {key} {value!r} must match {pattern.pattern}")
        tags[key] = value
    fields = {key: _field(key, value) for key, value in summary.items() if key in FIELDS}
    try:
        return Reading(m=MEASUREMENT, at=at, tags=tags, fields=fields)
    except ValidationError as exc:
        raise TelemetryError(f"session summary does not make a valid reading: {exc}") from None
