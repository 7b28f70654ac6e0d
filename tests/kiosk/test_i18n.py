"""The UI translation catalog: complete in every language, refused when it is not."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.errors import TranslationError
from kiosk.i18n import DEFAULT_DIR, Catalog, check_translations, placeholders
from kiosk.i18n.catalog import flatten

KIOSK = Path(__file__).resolve().parents[2] / "kiosk"
REQUIRED = ["ja", "ja-easy", "en", "zh-Hans", "ko", "vi"]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def _raw_texts() -> dict[str, dict[str, object]]:
    return {
        code: flatten(json.loads((DEFAULT_DIR / f"{code}.json").read_text(encoding="utf-8")))
        for code in REQUIRED
    }


def _rewrite(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")


def _copy_catalog(tmp_path: Path) -> Path:
    target = tmp_path / "i18n"
    shutil.copytree(DEFAULT_DIR, target, ignore=shutil.ignore_patterns("__*"))
    return target


def test_the_kiosk_speaks_the_six_required_languages_with_the_right_fonts(catalog: Catalog):
    langs = {lang.code: lang for lang in catalog.languages}
    assert list(langs)[: len(REQUIRED)] == REQUIRED
    assert {c for c, lang in langs.items() if lang.font == "cjk"} >= {"ja", "ja-easy", "zh-Hans"}
    assert langs["en"].font == "latin"
    assert langs["vi"].font == "latin"
    assert langs["ja"].name == "日本語"
    assert langs["vi"].name == "Tiếng Việt"


def test_every_key_is_translated_in_every_language_with_no_empty_text():
    texts = _raw_texts()
    reference = set(texts["ja"])
    for code, table in texts.items():
        assert set(table) == reference, code
        for key, value in table.items():
            assert isinstance(value, str), f"{code}: {key}"
            assert value.strip(), f"{code}: {key}"


def test_placeholders_are_identical_across_languages():
    texts = _raw_texts()
    for key, ref in texts["ja"].items():
        assert isinstance(ref, str)
        for code in REQUIRED:
            value = texts[code][key]
            assert isinstance(value, str)
            assert placeholders(value) == placeholders(ref), f"{code}: {key}"


def test_the_shipped_catalog_passes_its_own_check():
    assert check_translations(_raw_texts(), "ja") == []


def test_every_screen_the_kiosk_has_has_its_texts(catalog: Catalog):
    needed = [
        "attract.touch_to_start", "language.title", "home.consult", "home.info",
        "triage.progress", "emergency.title", "result.not_diagnosis", "tier.red.name",
        "tier.white.advice", "doctor.send", "ticket.number", "ticket.code", "waiting.elapsed",
        "reply.title", "wizard.who_title", "results.empty", "a11y.larger_text",
        "a11y.high_contrast", "a11y.read_aloud", "a11y.more_time", "idle.countdown",
        "idle.more_time", "privacy.body",
    ]  # fmt: skip
    missing = [key for key in needed if not catalog.has(key)]
    assert missing == []


def test_every_text_key_the_screens_use_exists(catalog: Catalog):
    groups = {key.split(".")[0] for key in catalog.keys}
    alternatives = "|".join(sorted(groups))
    literal = re.compile(r"""["']((?:""" + alternatives + r""")\.[a-z_]+(?:\.[a-z_]+)*)["']""")
    sources = [KIOSK / "app.py", KIOSK / "widgets.py", *sorted((KIOSK / "screens").glob("*"))]
    used: set[str] = set()
    for path in sources:
        if path.suffix in (".py", ".kv") and path.is_file():
            used |= set(literal.findall(path.read_text(encoding="utf-8")))
    used = {k for k in used if not k.endswith((".py", ".kv", ".json", ".yaml"))}
    assert sorted(k for k in used if not catalog.has(k)) == []


def test_text_fills_placeholders_in_the_chosen_language(catalog: Catalog):
    assert catalog.text("en", "idle.countdown", seconds=12) == "The screen will reset in 12 s."
    assert "12" in catalog.text("ja-easy", "idle.countdown", seconds=12)
    assert catalog.text("zh-Hans", "ticket.number", ticket="A-042").endswith("A-042")


def test_an_unknown_key_or_language_or_missing_parameter_is_a_clear_error(catalog: Catalog):
    with pytest.raises(TranslationError, match=r"unknown key 'home\.nope'"):
        catalog.text("en", "home.nope")
    with pytest.raises(TranslationError, match="unknown language 'fr'"):
        catalog.text("fr", "home.title")
    with pytest.raises(TranslationError, match="needs parameter 'seconds'"):
        catalog.text("ko", "idle.countdown")


def test_a_catalog_missing_a_translation_is_refused_naming_language_and_key(tmp_path: Path):
    target = _copy_catalog(tmp_path)
    ko = json.loads((target / "ko.json").read_text(encoding="utf-8"))
    del ko["idle"]["countdown"]
    _rewrite(target / "ko.json", ko)
    with pytest.raises(TranslationError) as err:
        Catalog.load(target)
    assert "ko: missing 'idle.countdown'" in err.value.reasons


def test_a_catalog_with_an_empty_text_or_other_placeholders_is_refused(tmp_path: Path):
    target = _copy_catalog(tmp_path)
    vi = json.loads((target / "vi.json").read_text(encoding="utf-8"))
    vi["home"]["title"] = "  "
    vi["idle"]["countdown"] = "Màn hình sẽ trở về sau {giay} giây."
    _rewrite(target / "vi.json", vi)
    with pytest.raises(TranslationError) as err:
        Catalog.load(target)
    assert "vi: 'home.title' is empty" in err.value.reasons
    assert any("vi: 'idle.countdown' has placeholders ['giay']" in r for r in err.value.reasons)


def test_a_listed_language_without_its_file_is_refused(tmp_path: Path):
    target = _copy_catalog(tmp_path)
    (target / "vi.json").unlink()
    with pytest.raises(TranslationError, match=r"vi\.json"):
        Catalog.load(target)


def test_a_catalog_file_that_is_not_json_is_refused_naming_the_file(tmp_path: Path):
    target = _copy_catalog(tmp_path)
    text = (target / "en.json").read_text(encoding="utf-8")
    (target / "en.json").write_text(text.rstrip().rstrip("}"), encoding="utf-8")
    with pytest.raises(TranslationError, match=r"en\.json.*not valid JSON"):
        Catalog.load(target)


def test_domain_modules_do_not_import_kivy():
    code = (
        "import sys\n"
        "import kiosk.i18n, kiosk.triage, kiosk.content, kiosk.session, kiosk.errors\n"
        "kiosk.i18n.Catalog.load(); kiosk.triage.TriageProtocol.load()\n"
        "kiosk.content.ContentPack.load()\n"
        "print('kivy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


def _outside_latin(text: str) -> set[str]:
    # Basic Latin, Latin-1, Latin Extended-A/B, combining marks, Latin Extended Additional
    # (Vietnamese), general punctuation: what a Latin UI font draws.
    ranges = [(0x20, 0x24F), (0x300, 0x36F), (0x1E00, 0x1EFF), (0x2000, 0x206F)]
    return {ch for ch in text if not any(lo <= ord(ch) <= hi for lo, hi in ranges)}


def test_texts_of_latin_font_languages_need_no_cjk_glyphs(catalog: Catalog):
    from kiosk.content import ContentPack
    from kiosk.triage import TriageProtocol

    protocol = TriageProtocol.load()
    pack = ContentPack.load()
    raw = _raw_texts()
    for lang in catalog.languages:
        if lang.font != "latin":
            continue
        texts = [str(v) for v in raw[lang.code].values()]
        texts += [by_lang[lang.code] for by_lang in protocol.texts.values()]
        texts += [i.title[lang.code] + i.body[lang.code] for i in pack.items]
        texts += [pack.label(lang.code, "who", t) for t in pack.who_tags]
        texts += [pack.label(lang.code, "what", t) for t in pack.what_tags]
        strays = {ch for text in texts for ch in _outside_latin(text)}
        assert strays == set(), f"{lang.code}: {sorted(strays)} would need a CJK font"
