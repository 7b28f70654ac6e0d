"""The kiosk's UI translations: one JSON file per language, checked complete when loaded.

Layout of a catalog directory (the shipped one, with notes for translators, is
``kiosk/data/i18n``)::

    languages.json     # the languages in display order: code, native name, font, voice
    ja.json            # texts of one language, nested mappings flattened to dotted keys
    en.json ...

``languages.json``::

    {"version": 1, "reference": "ja", "languages": [
        {"code": "ja", "name": "日本語", "font": "cjk", "voice": "ja"},
        {"code": "en", "name": "English", "font": "latin", "voice": "en"}]}

A language file maps keys to texts (``{"home": {"title": ...}}`` is the key ``home.title``).
Texts are ``str.format`` templates; placeholders such as ``{seconds}`` must be the same in every
language. Loading refuses a catalog where any language lacks a key the reference language has,
has a key it lacks, has an empty text or different placeholders: a missing translation is an
error at start, never a blank on screen. JSON rather than YAML because the kiosk reads the
catalog before its first frame, and the standard library's JSON parser is ready at once.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kiosk.errors import TranslationError

#: The catalog shipped with the kiosk.
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "data" / "i18n"

FontFamily = Literal["cjk", "latin"]


@dataclass(frozen=True, slots=True)
class Language:
    """One kiosk language: its code, its name in itself, the font family and TTS voice it needs.

    >>> Language("vi", "Tiếng Việt", "latin", "vi").font
    'latin'
    """

    code: str
    name: str
    font: FontFamily
    #: Voice name for the text-to-speech command (``{voice}`` in the kiosk's tts_command).
    voice: str


def placeholders(template: str) -> frozenset[str]:
    """Names of the ``{placeholders}`` in a text.

    >>> sorted(placeholders("Reset in {seconds} s ({n})"))
    ['n', 'seconds']
    """
    names = set()
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None:
            names.add(field)
    return frozenset(names)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one mapping with dotted keys.

    >>> flatten({"home": {"title": "Home"}, "ok": "OK"})
    {'home.title': 'Home', 'ok': 'OK'}
    """
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, full + "."))
        else:
            flat[full] = value
    return flat


def check_translations(
    texts: Mapping[str, Mapping[str, Any]], reference: str, *, what: str = ""
) -> list[str]:
    """Every reason a set of per-language texts is incomplete, empty or inconsistent.

    ``texts`` maps a language code to its key -> text mapping; ``reference`` is the language
    whose keys and placeholders every other language must match.

    >>> check_translations({"ja": {"a": "{n}件"}, "en": {"a": "{count} items"}}, "ja")
    ["en: 'a' has placeholders ['count'], ja has ['n']"]
    """
    reasons: list[str] = []
    where = f"{what}: " if what else ""
    ref = texts.get(reference)
    if ref is None:
        return [f"{where}reference language {reference!r} has no texts"]
    for lang, table in texts.items():
        for key, value in table.items():
            if not isinstance(value, str):
                reasons.append(f"{where}{lang}: {key!r} is not a text")
            elif not value.strip():
                reasons.append(f"{where}{lang}: {key!r} is empty")
        if lang == reference:
            continue
        for key in ref:
            if key not in table:
                reasons.append(f"{where}{lang}: missing {key!r}")
        for key in table:
            if key not in ref:
                reasons.append(f"{where}{lang}: {key!r} is not in {reference}")
        for key, value in table.items():
            ref_value = ref.get(key)
            if isinstance(value, str) and isinstance(ref_value, str):
                try:
                    mine, theirs = placeholders(value), placeholders(ref_value)
                except ValueError as exc:
                    reasons.append(f"{where}{lang}: {key!r} is a broken template ({exc})")
                    continue
                if mine != theirs:
                    reasons.append(
                        f"{where}{lang}: {key!r} has placeholders {sorted(mine)}, "
                        f"{reference} has {sorted(theirs)}"
                    )
    return reasons


class Catalog:
    """The UI texts in every kiosk language, complete by construction.

    >>> cat = Catalog.load()
    >>> [lang.code for lang in cat.languages][:3]
    ['ja', 'ja-easy', 'en']
    >>> cat.text("en", "idle.countdown", seconds=30)
    'The screen will reset in 30 s.'
    """

    def __init__(
        self, languages: list[Language], texts: dict[str, dict[str, str]], reference: str
    ) -> None:
        reasons = check_translations(texts, reference)
        codes = [lang.code for lang in languages]
        reasons += [f"{c}: listed but has no texts" for c in codes if c not in texts]
        reasons += [f"{c}: texts for an unlisted language" for c in texts if c not in codes]
        if reasons:
            raise TranslationError("translation catalog", reasons)
        self._languages = list(languages)
        self._by_code = {lang.code: lang for lang in languages}
        self._texts = texts
        self.reference = reference

    @classmethod
    def load(cls, directory: Path | str | None = None) -> Catalog:
        """Load and check the catalog in ``directory`` (default: the shipped one)."""
        base = Path(directory) if directory is not None else DEFAULT_DIR
        index = _read_json(base / "languages.json")
        reasons: list[str] = []
        if not isinstance(index, Mapping) or index.get("version") != 1:
            raise TranslationError(str(base / "languages.json"), ["version must be 1"])
        languages: list[Language] = []
        for i, entry in enumerate(index.get("languages") or []):
            try:
                font = entry["font"]
                if font not in ("cjk", "latin"):
                    raise ValueError(f"font {font!r} is not 'cjk' or 'latin'")
                languages.append(
                    Language(str(entry["code"]), str(entry["name"]), font, str(entry["voice"]))
                )
            except (KeyError, TypeError, ValueError) as exc:
                reasons.append(f"languages[{i}]: {exc}")
        if not languages:
            reasons.append("languages: none listed")
        if reasons:
            raise TranslationError(str(base / "languages.json"), reasons)
        texts: dict[str, dict[str, str]] = {}
        for lang in languages:
            data = _read_json(base / f"{lang.code}.json")
            if not isinstance(data, Mapping):
                raise TranslationError(str(base / f"{lang.code}.json"), ["not a mapping"])
            texts[lang.code] = flatten(data)
        reference = str(index.get("reference") or languages[0].code)
        return cls(languages, texts, reference)

    @property
    def languages(self) -> list[Language]:
        """The languages in display order."""
        return list(self._languages)

    @property
    def keys(self) -> frozenset[str]:
        """Every text key."""
        return frozenset(self._texts[self.reference])

    def language(self, code: str) -> Language:
        """The language with this code; :class:`TranslationError` if there is none."""
        try:
            return self._by_code[code]
        except KeyError:
            raise TranslationError("language", [f"unknown language {code!r}"]) from None

    def has(self, key: str) -> bool:
        """Whether ``key`` is a text key."""
        return key in self._texts[self.reference]

    def text(self, lang: str, key: str, **params: object) -> str:
        """The text ``key`` in ``lang`` with its placeholders filled from ``params``."""
        self.language(lang)
        try:
            template = self._texts[lang][key]
        except KeyError:
            raise TranslationError("text", [f"{lang}: unknown key {key!r}"]) from None
        try:
            return template.format(**params)
        except (KeyError, IndexError) as exc:
            raise TranslationError("text", [f"{lang}: {key!r} needs parameter {exc}"]) from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TranslationError(str(path), [f"cannot read ({exc.strerror})"]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TranslationError(str(path), [f"not valid JSON ({exc})"]) from None
