"""Languages of the web app: Japanese first, English too, through gettext catalogs (Babel).

Message ids in the templates and code are English; ``locale/ja/LC_MESSAGES/messages.po`` holds
the Japanese, compiled to ``messages.mo`` (``make web-catalogs``; a test fails when the two
disagree). The language of a request is the user's own choice, else the ``lang`` cookie, else
the browser's ``Accept-Language``, else ``[web] language``.

Times are stored and exported in UTC ISO 8601; pages show them in ``[web] timezone`` (JST).

>>> from datetime import UTC, datetime
>>> at = datetime(2026, 12, 5, 1, 2, tzinfo=UTC)
>>> Formats("ja", "Asia/Tokyo").datetime(at), Formats("en", "Asia/Tokyo").datetime(at)
('2026/12/05 10:02', '2026-12-05 10:02')
>>> Formats("ja", "Asia/Tokyo").ago(at, now=datetime(2026, 12, 5, 1, 14, tzinfo=UTC))
'12 分前'
"""

from __future__ import annotations

import gettext
import math
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date as Date
from datetime import datetime as DateTime
from datetime import timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_timedelta
from babel.numbers import format_decimal

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES: tuple[str, ...] = ("ja", "en")
LANGUAGE_NAMES = {"ja": "日本語", "en": "English"}
DOMAIN = "messages"

current_language: ContextVar[str] = ContextVar("current_language", default="ja")


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of ``language`` (English is the message ids themselves)."""
    if language == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language])


def N_(message: str) -> str:
    """Marks ``message`` for the catalogs where it is defined; it is translated where shown."""
    return message


#: Words shown from data (node kinds, roles, states): marked here, translated in templates.
DATA_WORDS = (
    N_("restroom"),
    N_("vehicle"),
    N_("station"),
    N_("kiosk"),
    N_("admin"),
    N_("staff"),
    N_("auditor"),
)


YES, NO = N_("yes"), N_("no")


def gettext_(message: str) -> str:
    """``message`` in the language of the current request."""
    return translations(current_language.get()).gettext(message)


def ngettext_(singular: str, plural: str, n: int) -> str:
    return translations(current_language.get()).ngettext(singular, plural, n)


def pick_language(*, user: str | None, cookie: str | None, accept: str | None, default: str) -> str:
    """The language to answer in: the user's, the cookie's, the browser's first we have.

    >>> pick_language(user=None, cookie=None, accept="en-US,en;q=0.9,ja;q=0.8", default="ja")
    'en'
    >>> pick_language(user=None, cookie="ja", accept="en", default="ja")
    'ja'
    """
    for chosen in (user, cookie):
        if chosen in LANGUAGES:
            return chosen
    if accept:
        weighted: list[tuple[float, int, str]] = []
        for i, part in enumerate(accept.split(",")[:20]):
            tag, _, params = part.strip().partition(";")
            q = 1.0
            if params.strip().startswith("q="):
                try:
                    q = float(params.strip()[2:])
                except ValueError:
                    q = 0.0
            weighted.append((-q, i, tag.strip().lower().split("-")[0]))
        for _q, _i, lang in sorted(weighted):
            if lang in LANGUAGES:
                return lang
    return default


@dataclass(frozen=True, slots=True)
class Formats:
    """How one page shows times and numbers: its language and the city's time zone."""

    language: str
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, at: DateTime) -> DateTime:
        return at.astimezone(self.zone)

    def datetime(self, at: DateTime | None) -> str:
        """Minutes in the city's zone: ``2026/12/05 10:02`` (ja) or ``2026-12-05 10:02``."""
        if at is None:
            return "—"
        local = self.local(at)
        return local.strftime("%Y/%m/%d %H:%M" if self.language == "ja" else "%Y-%m-%d %H:%M")

    def date_only(self, day: Date) -> str:
        """A calendar date, as the city writes it."""
        return day.strftime("%Y/%m/%d" if self.language == "ja" else "%Y-%m-%d")

    def percent(self, ratio: float) -> str:
        """``99.5 %``: one decimal, never rounded up to 100 while something is missing."""
        shown = math.floor(ratio * 1000) / 10
        return f"{shown:.1f} %"

    def iso(self, at: DateTime | None) -> str:
        """ISO 8601 with the city's offset, for ``<time datetime>`` and exports."""
        return "" if at is None else self.local(at).isoformat(timespec="seconds")

    def ago(self, at: DateTime | None, *, now: DateTime) -> str:
        """How long ago, in words: ``12 分前`` / ``12 minutes ago``."""
        if at is None:
            return "—"
        words = format_timedelta(at - now, add_direction=True, threshold=1.5, locale=self.language)
        return words.replace("\u00a0", " ")

    def number(self, value: float | int | None, digits: int = 1) -> str:
        if value is None:
            return "—"
        if isinstance(value, int):
            return format_decimal(value, locale=self.language)
        return format_decimal(round(value, digits), locale=self.language)

    def value(self, value: object) -> str:
        """A field's value as a person reads it: floats to at most 3 decimals, thousands
        grouped, booleans as yes/no in the page's language.

        >>> Formats("en", "Asia/Tokyo").value(105.05000000000018), Formats("ja", "UTC").value(True)
        ('105.05', 'はい')
        """
        if isinstance(value, bool):
            return translations(self.language).gettext(YES if value else NO)
        if isinstance(value, int):
            return format_decimal(value, locale=self.language)
        if isinstance(value, float):
            return format_decimal(round(value, 3), locale=self.language)
        return str(value)

    def duration(self, seconds: float) -> str:
        return format_timedelta(timedelta(seconds=seconds), locale=self.language, threshold=1.5)
