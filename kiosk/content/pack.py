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

What a pack must be, so that nothing in it can stop the kiosk (:func:`check_pack_bytes` gives
every reason it is not, ``machikado kiosk check-pack PATH`` prints them):

- at most :data:`MAX_PACK_BYTES`, checked before anything is parsed; nested no deeper than
  :data:`MAX_DEPTH` and holding at most :data:`MAX_NODES` values, checked by a pass that does not
  recurse (YAML events, JSON brackets) before the pack is parsed into Python objects; no YAML
  aliases (``*name``);
- ``languages`` includes every language the kiosk offers (its translation catalog's), and every
  text exists in each of them;
- tags are short ids (``[a-z0-9][a-z0-9_-]*``), texts have bounded lengths, items are few
  enough to rank on every tap;
- a ``link`` is ``https:`` (with a host), ``tel:`` or ``mailto:``, nothing else (no
  ``javascript:``, ``data:``, ``file:``, plain ``http:``), and fits the QR code the information
  screen draws: :func:`kiosk.qr.qr_matrix`, the very function the screen calls.

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
import re
import threading
from collections.abc import Collection, Mapping
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
#: Deepest nesting of lists and mappings (the format itself needs 4: pack, items, item, title).
MAX_DEPTH = 12
#: Most values (texts, numbers, lists, mappings) a pack may hold.
MAX_NODES = 200_000
#: Most items, and most tags of each kind (who, what).
MAX_ITEMS = 500
MAX_TAGS = 100
#: Longest texts, in characters: a label or title must fit a button or a heading, a body a
#: screen (Kivy renders each text into one texture).
MAX_LABEL = 120
MAX_TITLE = 200
MAX_BODY = 4000
#: Link schemes shown as QR codes: the web over TLS, a phone number, a mail address.
LINK_SCHEMES = ("https", "tel", "mailto")
#: Tag ids: they name the wizard's buttons and the usage counts' categories.
TAG_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SHORT_TEXT = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
_TEL = re.compile(r"^\+?[0-9][0-9().-]{2,30}$")
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|[^\s\[\]{},:"]+')


def kiosk_languages() -> tuple[str, ...]:
    """The languages the kiosk offers: those of its shipped translation catalog."""
    from kiosk.i18n import Catalog

    return tuple(lang.code for lang in Catalog.load().languages)


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
    def load(
        cls,
        source: Path | str | bytes | None = None,
        *,
        languages: Collection[str] | None = None,
    ) -> ContentPack:
        """Read and validate a pack from a file path or raw bytes (default: the sample).

        ``languages`` are those the kiosk offers, which the pack must cover (default: the
        shipped catalog's).
        """
        if isinstance(source, bytes):
            raw, where = source, "content pack"
        else:
            where = str(source if source is not None else DEFAULT_PACK)
            try:
                raw = _read_bounded(Path(where))
            except OSError as exc:
                raise ContentPackError(where, [f"cannot read ({exc.strerror})"]) from None
        data, reasons = parse_pack_bytes(raw)
        if not reasons:
            reasons = validate_pack(data, languages=languages)
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
    """Parse a pack's bytes (YAML or JSON); the data and every reason it could not be parsed.

    Size first, then the shape (depth, count of values, aliases) in a pass that does not
    recurse, and only then the parse into Python objects, which recurses as deep as the pack.
    """
    if len(raw) > MAX_PACK_BYTES:
        return None, [f"the pack is {len(raw)} bytes, more than {MAX_PACK_BYTES}"]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [f"not UTF-8 text ({exc.reason} at byte {exc.start})"]
    is_json = text.lstrip().startswith("{")
    shape = _json_shape(text) if is_json else _yaml_shape(text)
    if shape:
        return None, [shape]
    try:
        if is_json:
            return json.loads(text), []
        return yamlfile.safe_load(text), []
    except json.JSONDecodeError as exc:
        return None, [f"not valid JSON ({exc.msg} at line {exc.lineno})"]
    except yaml.YAMLError as exc:
        return None, [f"not valid YAML ({_short(str(exc), 300)})"]
    except (ValueError, RecursionError) as exc:
        # An integer of thousands of digits, say: Python refuses to read it.
        return None, [f"cannot be read: {_short(str(exc), 200)}"]


def _json_shape(text: str) -> str | None:
    """Why the JSON text is too deep or too big to parse; None if it is neither."""
    depth = values = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels (at character {match.start()})"
        elif token in ("]", "}"):
            depth -= 1
            continue
        values += 1
        if values > MAX_NODES:
            return f"holds more than {MAX_NODES} values"
    return None


def _yaml_shape(text: str) -> str | None:
    """Why the YAML text is too deep, too big or uses aliases; None if it is none of them.

    Reads the parser's events only, which builds no objects and does not recurse. A syntax
    error is left for the real parse to report.
    """
    depth = values = 0
    try:
        for event in yaml.parse(text, Loader=yamlfile.SAFE_LOADER):
            if isinstance(event, yaml.AliasEvent):
                return (
                    f"uses a YAML alias (*{_short(str(event.anchor), 40)}) at line "
                    f"{_line(event)}: write the value out instead"
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return f"nested deeper than {MAX_DEPTH} levels (at line {_line(event)})"
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
                continue
            if isinstance(event, yaml.NodeEvent):
                values += 1
                if values > MAX_NODES:
                    return f"holds more than {MAX_NODES} values"
    except yaml.YAMLError:
        return None
    return None


def validate_pack(data: Any, *, languages: Collection[str] | None = None) -> list[str]:
    """Every reason ``data`` (a parsed pack) is not a usable content pack; [] if it is.

    ``languages`` are those the kiosk offers (default: the shipped catalog's); the pack must
    have texts in each.

    >>> validate_pack({"format": "machikado-content", "version": 1, "id": "x", "revision": "1",
    ...                "languages": ["en"], "who": {}, "what": {"waste": {"en": "Waste"}},
    ...                "items": [{"id": "a", "what": ["food"], "title": {"en": "A"},
    ...                           "body": {"en": ""}}]}, languages=["en"])
    ["items[0].what: unknown tag 'food'", "items[0].body: missing or empty in 'en'"]
    """
    offered = tuple(kiosk_languages() if languages is None else languages)
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
        if not isinstance(data.get(key), str) or not _SHORT_TEXT.fullmatch(data[key]):
            reasons.append(f"{key}: required text of 1 to 64 characters, no control characters")
    if "sample" in data and not isinstance(data["sample"], bool):
        reasons.append("sample: must be true or false")
    langs = data.get("languages")
    if (
        not isinstance(langs, list)
        or not langs
        or not all(isinstance(x, str) and _SHORT_TEXT.fullmatch(x) for x in langs)
    ):
        return [*reasons, "languages: must be a non-empty list of language codes"]
    missing = [code for code in offered if code not in langs]
    if missing:
        reasons.append(
            f"languages: the kiosk offers {', '.join(missing)} too; a pack must have every text "
            f"in each of {', '.join(offered)}"
        )
    tags: dict[str, set[str]] = {}
    for kind in ("who", "what"):
        table = data.get(kind)
        tags[kind] = set()
        if not isinstance(table, Mapping):
            reasons.append(f"{kind}: must be a mapping of tag -> {{language: label}}")
            continue
        if len(table) > MAX_TAGS:
            reasons.append(f"{kind}: {len(table)} tags, more than {MAX_TAGS}")
            continue
        for tag, labels in table.items():
            if not isinstance(tag, str) or not TAG_ID.fullmatch(tag):
                reasons.append(f"{kind}: tag {_short(repr(tag), 70)} must match {TAG_ID.pattern}")
                continue
            tags[kind].add(tag)
            reasons += _check_texts(f"{kind}.{tag}", labels, langs, MAX_LABEL)
    if not tags["what"] and isinstance(data.get("what"), Mapping):
        reasons.append("what: at least one tag")
    items = data.get("items")
    if not isinstance(items, list) or not items:
        return [*reasons, "items: must be a non-empty list"]
    if len(items) > MAX_ITEMS:
        return [*reasons, f"items: {len(items)} items, more than {MAX_ITEMS}"]
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"items[{i}]"
        if not isinstance(item, Mapping):
            reasons.append(f"{where}: must be a mapping")
            continue
        iid = item.get("id")
        if not isinstance(iid, str) or not _SHORT_TEXT.fullmatch(iid):
            reasons.append(f"{where}.id: required text of 1 to 64 characters")
        elif iid in seen:
            reasons.append(f"{where}.id: {iid!r} appears twice")
        else:
            seen.add(iid)
        for kind in ("who", "what"):
            value = item.get(kind, [])
            if not isinstance(value, list):
                reasons.append(f"{where}.{kind}: must be a list of tags")
                continue
            reasons += [
                f"{where}.{kind}: unknown tag {_short(repr(t), 70)}"
                for t in value
                if not isinstance(t, str) or t not in tags[kind]
            ]
        if not item.get("what"):
            reasons.append(f"{where}.what: at least one tag")
        reasons += _check_texts(f"{where}.title", item.get("title"), langs, MAX_TITLE)
        reasons += _check_texts(f"{where}.body", item.get("body"), langs, MAX_BODY)
        link = item.get("link")
        if link is not None:
            reasons += [f"{where}.link: {r}" for r in link_reasons(link)]
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


def check_pack_bytes(raw: bytes, *, languages: Collection[str] | None = None) -> list[str]:
    """Every reason these bytes are not a content pack the kiosk can show; [] if they are."""
    data, reasons = parse_pack_bytes(raw)
    return reasons or validate_pack(data, languages=languages)


def check_pack_file(path: Path | str, *, languages: Collection[str] | None = None) -> list[str]:
    """Every reason the pack file at ``path`` cannot be used; [] if it can (a CLI hook)."""
    try:
        raw = _read_bounded(Path(path))
    except OSError as exc:
        return [f"cannot read ({exc.strerror})"]
    return check_pack_bytes(raw, languages=languages)


def _read_bounded(path: Path) -> bytes:
    """The file's bytes, but no more than one past :data:`MAX_PACK_BYTES` (enough to refuse)."""
    with path.open("rb") as f:
        return f.read(MAX_PACK_BYTES + 1)


def link_reasons(link: Any) -> list[str]:
    """Why ``link`` cannot be shown as an item's QR code; [] if it can.

    >>> link_reasons("https://www.city.tsukuba.lg.jp/"), link_reasons("tel:+81-29-883-1111")
    ([], [])
    >>> link_reasons("javascript:alert(1)")
    ["'javascript:alert(1)': the scheme must be https:, tel: or mailto: (not javascript:)"]
    """
    if not isinstance(link, str):
        return ["must be text"]
    shown = _short(repr(link), 80)
    if not link or any(c.isspace() or not c.isprintable() for c in link):
        return [f"{shown}: empty, or holds spaces or control characters"]
    try:
        parts = urlsplit(link)
    except ValueError as exc:
        return [f"{shown}: not a valid address ({exc})"]
    scheme = parts.scheme.lower()
    if scheme not in LINK_SCHEMES:
        return [
            f"{shown}: the scheme must be https:, tel: or mailto: (not {scheme or 'none'}:)"
            if scheme != "http"
            else f"{shown}: http: is not encrypted; use https:"
        ]
    if scheme == "https" and not parts.hostname:
        return [f"{shown}: an https: link needs a host"]
    if scheme == "tel" and not _TEL.fullmatch(parts.path):
        return [f"{shown}: a tel: link needs a phone number, such as tel:+81-29-883-1111"]
    if scheme == "mailto" and "@" not in parts.path:
        return [f"{shown}: a mailto: link needs an address"]
    # The very function the information screen draws the code with (kiosk.widgets.QrCode).
    from kiosk.qr import QrError, qr_matrix

    try:
        qr_matrix(link)
    except QrError as exc:
        return [f"{shown}: cannot be shown as a QR code: {exc}"]
    return []


class ContentStore:
    """The pack the kiosk shows now; a new pack replaces it only if it is valid.

    Safe to call from the MQTT thread while the UI reads ``pack``. ``replace(new_bytes)``
    returns the reasons a pack was refused (and keeps the current one), or [] when it switched.
    A pack that passed the checks and still failed on screen is taken back with
    :meth:`roll_back`, and refused if it is offered again.

    >>> store = ContentStore(ContentPack.load())
    >>> store.pack.id
    'sample-city'
    """

    def __init__(
        self,
        pack: ContentPack,
        *,
        raw: bytes | None = None,
        languages: Collection[str] | None = None,
    ) -> None:
        self._pack = pack
        self._digest = _digest(raw) if raw is not None else b""
        self._languages = tuple(kiosk_languages() if languages is None else languages)
        #: The pack in use before the last replace, to go back to if the new one fails.
        self._previous: ContentPack | None = None
        #: Packs (by digest) that failed on screen: refused if offered again.
        self._failed: set[bytes] = set()
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
        digest = _digest(new)
        try:
            if digest in self._failed:
                raise ContentPackError(
                    source, ["it failed on screen before; the kiosk went back to the last good one"]
                )
            pack = ContentPack.load(new, languages=self._languages)
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
            old, self._pack, self._digest = self._pack, pack, digest
            self._previous = old
        log.info(
            "content_pack_replaced",
            source=source,
            pack=pack.id,
            revision=pack.revision,
            old=old.revision,
        )
        return []

    def roll_back(self) -> ContentPack | None:
        """The pack in use failed on screen: go back to the pack before it or, with none, to the
        shipped sample; the pack now in use, or None when there is nothing to go back to. The
        failed pack is refused from now on."""
        with self._lock:
            failed, back = self._pack, self._previous
            self._failed.add(self._digest)
            self._previous = None
        if back is None and not failed.sample:
            try:
                back = ContentPack.load(DEFAULT_PACK, languages=self._languages)
            except ContentPackError:
                back = None
        if back is None:
            return None
        with self._lock:
            self._pack, self._digest = back, b""
        log.error(
            "content_pack_rolled_back",
            failed=failed.id,
            failed_revision=failed.revision,
            pack=back.id,
            revision=back.revision,
        )
        return back


def _digest(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def _check_texts(where: str, texts: Any, langs: list[str], longest: int) -> list[str]:
    if not isinstance(texts, Mapping):
        return [f"{where}: must be a mapping of language -> text"]
    reasons: list[str] = []
    for code in langs:
        text = texts.get(code)
        if not isinstance(text, str) or not text.strip():
            reasons.append(f"{where}: missing or empty in {code!r}")
        elif len(text) > longest:
            reasons.append(f"{where}: {len(text)} characters in {code!r}, more than {longest}")
    return reasons


def _line(event: yaml.Event) -> int | str:
    mark = event.start_mark
    return "?" if mark is None else mark.line + 1


def _short(text: str, most: int) -> str:
    """``text`` cut to ``most`` characters, so that a reason stays one readable line."""
    return text if len(text) <= most else text[: most - 1] + "…"


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
