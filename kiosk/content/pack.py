"""Content packs: the versioned YAML/JSON format, its validator, and the wizard's ranking.

Version 1 of the format (JSON with the same structure is read too)::

    format: machikado-content
    version: 1
    id: sample-city
    revision: "2025-06-01"
    sample: true
    languages: [ja, ja-easy, en, zh-Hans, ko, vi]
    who:                                    # the wizard's first question: who are you?
      parent_small_children: {ja: 小さな子どもの親, en: Parent of small children, ...}
    what:                                   # ... and its second: what do you need?
      health: {ja: 健康, en: Health, ...}
    items:
      - id: infant-checkups
        who: [parent_small_children]        # empty or absent: for everyone
        what: [health, childcare]           # at least one
        title: {ja: ..., en: ..., ...}
        body: {ja: ..., en: ..., ...}
        link: https://example.org/checkups  # shown as a QR code; optional
        valid_from: 2025-04-01              # optional, inclusive
        valid_to: 2026-03-31                # optional, inclusive
        priority: 1                         # optional, 0-3: the city's emphasis

Ranking (:meth:`ContentPack.rank`), for the needs a resident picked in the wizard:

1. Items not valid today (before ``valid_from`` or after ``valid_to``) are never shown.
2. An item is shown if it shares a ``what`` tag with the selection (any item if none was
   picked) and, when a ``who`` was picked, it shares a ``who`` tag or is for everyone.
3. Score = 5 x shared ``who`` tags + 3 x shared ``what`` tags + ``priority`` (0-3). A ``who``
   match weighs most, since an item aimed at the resident's situation usually helps more than
   a general one; the city's priority lifts items it wants seen and breaks near-ties.
4. Equal scores: the item whose validity ends soonest first (a deadline is near), then by id.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
import yaml

from kiosk import yamlfile
from kiosk.errors import ContentPackError

log = structlog.get_logger(__name__)

FORMAT = "machikado-content"
VERSION = 1
MAX_PRIORITY = 3
#: The sample pack shipped with the kiosk.
DEFAULT_PACK = Path(__file__).resolve().parent.parent / "data" / "content" / "sample.yaml"
#: A pack larger than this is refused before parsing (it arrives over MQTT too).
MAX_PACK_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Item:
    """One piece of information, with its texts in every language of the pack."""

    id: str
    who: frozenset[str]
    what: frozenset[str]
    title: Mapping[str, str]
    body: Mapping[str, str]
    link: str | None
    valid_from: date | None
    valid_to: date | None
    priority: int

    def is_valid_on(self, day: date) -> bool:
        """Whether the item may be shown on ``day``."""
        if self.valid_from is not None and day < self.valid_from:
            return False
        return self.valid_to is None or day <= self.valid_to


@dataclass(frozen=True, slots=True)
class RankedItem:
    """An item chosen for a resident: its texts in their language, its score and why."""

    item: Item
    score: int
    title: str
    body: str
    link: str | None
    valid_to: date | None
    matched_who: frozenset[str]
    matched_what: frozenset[str]


@dataclass(frozen=True)
class ContentPack:
    """A loaded, valid content pack.

    >>> from datetime import date
    >>> pack = ContentPack.load()
    >>> top = pack.rank({"parent_small_children"}, {"health"}, date(2025, 6, 1), "en")[0]
    >>> "parent_small_children" in top.item.who or not top.item.who
    True
    >>> pack.label("en", "what", "waste")
    'Waste and recycling'
    """

    id: str
    revision: str
    sample: bool
    languages: tuple[str, ...]
    who: Mapping[str, Mapping[str, str]]
    what: Mapping[str, Mapping[str, str]]
    items: tuple[Item, ...]

    @classmethod
    def load(cls, source: Path | str | bytes | None = None) -> ContentPack:
        """Read and validate a pack from a file path or raw bytes (default: the sample)."""
        if isinstance(source, bytes):
            data, reasons = parse_pack_bytes(source)
            where = "content pack"
        else:
            where = str(source if source is not None else DEFAULT_PACK)
            try:
                raw = Path(where).read_bytes()
            except OSError as exc:
                raise ContentPackError(where, [f"cannot read ({exc.strerror})"]) from None
            data, reasons = parse_pack_bytes(raw)
        if not reasons:
            reasons = validate_pack(data)
        if reasons:
            raise ContentPackError(where, reasons)
        return _build(data)

    @property
    def who_tags(self) -> list[str]:
        """The wizard's "who" choices, in the pack's order."""
        return list(self.who)

    @property
    def what_tags(self) -> list[str]:
        """The wizard's "what" choices, in the pack's order."""
        return list(self.what)

    def label(self, lang: str, kind: str, tag: str) -> str:
        """The label of a ``who`` or ``what`` tag in ``lang``."""
        table = self.who if kind == "who" else self.what
        try:
            return table[tag][lang]
        except KeyError:
            raise ContentPackError("label", [f"no {kind} tag {tag!r} in {lang!r}"]) from None

    def rank(self, who: set[str], what: set[str], today: date, lang: str) -> list[RankedItem]:
        """The items for these needs, best first (see the module docs for the scoring)."""
        if lang not in self.languages:
            raise ContentPackError("rank", [f"the pack has no language {lang!r}"])
        ranked: list[RankedItem] = []
        for item in self.items:
            if not item.is_valid_on(today):
                continue
            shared_what = item.what & what
            shared_who = item.who & who
            if what and not shared_what:
                continue
            if who and item.who and not shared_who:
                continue
            score = 5 * len(shared_who) + 3 * len(shared_what) + item.priority
            ranked.append(
                RankedItem(
                    item=item,
                    score=score,
                    title=item.title[lang],
                    body=item.body[lang],
                    link=item.link,
                    valid_to=item.valid_to,
                    matched_who=frozenset(shared_who),
                    matched_what=frozenset(shared_what),
                )
            )
        ranked.sort(key=lambda r: (-r.score, r.valid_to or date.max, r.item.id))
        return ranked


def parse_pack_bytes(raw: bytes) -> tuple[Any, list[str]]:
    """Parse a pack's bytes (YAML or JSON); the data and every reason it could not be parsed."""
    if len(raw) > MAX_PACK_BYTES:
        return None, [f"the pack is {len(raw)} bytes, more than {MAX_PACK_BYTES}"]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [f"not UTF-8 text ({exc.reason} at byte {exc.start})"]
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text), []
        except json.JSONDecodeError as exc:
            return None, [f"not valid JSON ({exc.msg} at line {exc.lineno})"]
    try:
        return yamlfile.safe_load(text), []
    except yaml.YAMLError as exc:
        return None, [f"not valid YAML ({exc})"]


def validate_pack(data: Any) -> list[str]:
    """Every reason ``data`` (a parsed pack) is not a usable content pack; [] if it is.

    >>> validate_pack({"format": "machikado-content", "version": 1, "id": "x", "revision": "1",
    ...                "languages": ["en"], "who": {}, "what": {"waste": {"en": "Waste"}},
    ...                "items": [{"id": "a", "what": ["food"], "title": {"en": "A"},
    ...                           "body": {"en": ""}}]})
    ["items[0].what: unknown tag 'food'", "items[0].body: missing or empty in 'en'"]
    """
    if not isinstance(data, Mapping):
        return ["the pack is not a mapping"]
    reasons: list[str] = []
    if data.get("format") != FORMAT:
        reasons.append(f"format: must be {FORMAT!r}")
    if data.get("version") != VERSION:
        return [
            *reasons,
            f"version: {data.get('version')!r} is not supported "
            f"(this kiosk reads version {VERSION})",
        ]
    for key in ("id", "revision"):
        if not isinstance(data.get(key), str) or not data.get(key):
            reasons.append(f"{key}: required text")
    if "sample" in data and not isinstance(data["sample"], bool):
        reasons.append("sample: must be true or false")
    langs = data.get("languages")
    if not isinstance(langs, list) or not langs or not all(isinstance(x, str) for x in langs):
        return [*reasons, "languages: must be a non-empty list of language codes"]
    tags: dict[str, set[str]] = {}
    for kind in ("who", "what"):
        table = data.get(kind)
        tags[kind] = set()
        if not isinstance(table, Mapping):
            reasons.append(f"{kind}: must be a mapping of tag -> {{language: label}}")
            continue
        for tag, labels in table.items():
            tags[kind].add(str(tag))
            reasons += _check_texts(f"{kind}.{tag}", labels, langs)
    if not tags["what"] and isinstance(data.get("what"), Mapping):
        reasons.append("what: at least one tag")
    items = data.get("items")
    if not isinstance(items, list) or not items:
        return [*reasons, "items: must be a non-empty list"]
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"items[{i}]"
        if not isinstance(item, Mapping):
            reasons.append(f"{where}: must be a mapping")
            continue
        iid = item.get("id")
        if not isinstance(iid, str) or not iid:
            reasons.append(f"{where}.id: required text")
        elif iid in seen:
            reasons.append(f"{where}.id: {iid!r} appears twice")
        else:
            seen.add(iid)
        for kind in ("who", "what"):
            value = item.get(kind, [])
            if not isinstance(value, list):
                reasons.append(f"{where}.{kind}: must be a list of tags")
                continue
            reasons += [f"{where}.{kind}: unknown tag {t!r}" for t in value if t not in tags[kind]]
        if not item.get("what"):
            reasons.append(f"{where}.what: at least one tag")
        reasons += _check_texts(f"{where}.title", item.get("title"), langs)
        reasons += _check_texts(f"{where}.body", item.get("body"), langs)
        link = item.get("link")
        if link is not None and not _is_web_link(link):
            reasons.append(f"{where}.link: {link!r} is not an http(s) address")
        start, start_reason = _as_date(item.get("valid_from"))
        end, end_reason = _as_date(item.get("valid_to"))
        reasons += [f"{where}.valid_from: {r}" for r in start_reason]
        reasons += [f"{where}.valid_to: {r}" for r in end_reason]
        if start and end and end < start:
            reasons.append(f"{where}: valid_to {end} is before valid_from {start}")
        priority = item.get("priority", 0)
        if (
            not isinstance(priority, int)
            or isinstance(priority, bool)
            or not 0 <= priority <= MAX_PRIORITY
        ):
            reasons.append(f"{where}.priority: must be a whole number 0-{MAX_PRIORITY}")
    return reasons


def check_pack_file(path: Path | str) -> list[str]:
    """Every reason the pack file at ``path`` cannot be used; [] if it can (a CLI hook)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return [f"{path}: cannot read ({exc.strerror})"]
    data, reasons = parse_pack_bytes(raw)
    return reasons or validate_pack(data)


class ContentStore:
    """The pack the kiosk shows now; a new pack replaces it only if it is valid.

    Safe to call from the MQTT thread while the UI reads ``pack``. ``replace(new_bytes)``
    returns the reasons a pack was refused (and keeps the current one), or [] when it switched.

    >>> store = ContentStore(ContentPack.load())
    >>> store.pack.id
    'sample-city'
    """

    def __init__(self, pack: ContentPack, *, raw: bytes | None = None) -> None:
        self._pack = pack
        self._digest = _digest(raw) if raw is not None else b""
        self._lock = threading.Lock()

    @property
    def pack(self) -> ContentPack:
        """The current pack."""
        with self._lock:
            return self._pack

    def holds(self, raw: bytes) -> bool:
        """Whether ``raw`` is byte for byte the pack in use (a retained pack comes again at
        every reconnect, a file poll may see the same bytes rewritten)."""
        with self._lock:
            return self._digest == _digest(raw)

    def replace(self, new: bytes, *, source: str = "content pack") -> list[str]:
        """Validate ``new`` and switch to it; the reasons it was refused ([] = accepted).

        ``source`` (``mqtt``, a file path) names where it came from in the log.
        """
        try:
            pack = ContentPack.load(new)
        except ContentPackError as exc:
            with self._lock:
                kept = self._pack
            log.warning(
                "content_pack_refused",
                source=source,
                kept=kept.id,
                revision=kept.revision,
                reasons=exc.reasons,
            )
            return list(exc.reasons)
        with self._lock:
            old, self._pack, self._digest = self._pack, pack, _digest(new)
        log.info(
            "content_pack_replaced",
            source=source,
            pack=pack.id,
            revision=pack.revision,
            old=old.revision,
        )
        return []


def _digest(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def _check_texts(where: str, texts: Any, langs: list[str]) -> list[str]:
    if not isinstance(texts, Mapping):
        return [f"{where}: must be a mapping of language -> text"]
    return [
        f"{where}: missing or empty in {code!r}"
        for code in langs
        if not isinstance(texts.get(code), str) or not texts[code].strip()
    ]


def _is_web_link(link: Any) -> bool:
    if not isinstance(link, str):
        return False
    parts = urlsplit(link)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _as_date(value: Any) -> tuple[date | None, list[str]]:
    if value is None:
        return None, []
    if isinstance(value, date):
        return value, []
    if isinstance(value, str):
        try:
            return date.fromisoformat(value), []
        except ValueError:
            pass
    return None, [f"{value!r} is not a date (YYYY-MM-DD)"]


def _build(data: Mapping[str, Any]) -> ContentPack:
    items = tuple(
        Item(
            id=str(i["id"]),
            who=frozenset(i.get("who") or ()),
            what=frozenset(i["what"]),
            title=dict(i["title"]),
            body=dict(i["body"]),
            link=i.get("link"),
            valid_from=_as_date(i.get("valid_from"))[0],
            valid_to=_as_date(i.get("valid_to"))[0],
            priority=int(i.get("priority", 0)),
        )
        for i in data["items"]
    )
    return ContentPack(
        id=str(data["id"]),
        revision=str(data["revision"]),
        sample=bool(data.get("sample", False)),
        languages=tuple(data["languages"]),
        who={str(k): dict(v) for k, v in data["who"].items()},
        what={str(k): dict(v) for k, v in data["what"].items()},
        items=items,
    )
