"""Content packs: the shipped sample, validation, the wizard's ranking, and replacing a pack."""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from typing import Any

import pytest
import yaml

from kiosk.content import DEFAULT_PACK, ContentPack, ContentStore, check_pack_file, validate_pack
from kiosk.errors import ContentPackError
from kiosk.i18n import Catalog

TODAY = date(2026, 11, 26)
#: The languages of the small pack: a kiosk offering only these would take it.
SMALL = ("en", "ja")


@pytest.fixture(scope="module")
def pack() -> ContentPack:
    return ContentPack.load()


def _data() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_PACK.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _small() -> dict[str, Any]:
    def t(text: str) -> dict[str, str]:
        return {"en": text, "ja": f"「{text}」"}

    def item(iid: str, who: list[str], what: list[str], **extra: Any) -> dict[str, Any]:
        return {"id": iid, "who": who, "what": what, "title": t(iid), "body": t("body"), **extra}

    return {
        "format": "machikado-content",
        "version": 1,
        "id": "small",
        "revision": "1",
        "languages": ["en", "ja"],
        "who": {"parent": t("Parent"), "senior": t("Senior")},
        "what": {"health": t("Health"), "waste": t("Waste")},
        "items": [
            item("for-parents", ["parent"], ["health"]),
            item("for-everyone", [], ["health"]),
            item("for-seniors", ["senior"], ["health"]),
            item("waste", [], ["waste"]),
            item("expired", [], ["health"], valid_to="2026-11-25"),
            item("future", [], ["health"], valid_from="2026-11-27"),
            item("last-day", [], ["health"], valid_from="2026-01-01", valid_to="2026-11-26"),
            item("boosted", [], ["health"], priority=3),
        ],
    }


def _ids(pack: ContentPack, who: set[str], what: set[str], day: date = TODAY) -> list[str]:
    return [r.item.id for r in pack.rank(who, what, day, "en")]


# --- The shipped sample -----------------------------------------------------------------------


def test_the_sample_pack_is_valid_in_every_kiosk_language(pack: ContentPack):
    assert validate_pack(_data()) == []
    assert set(pack.languages) >= {lang.code for lang in Catalog.load().languages}
    assert pack.sample is True
    assert 15 <= len(pack.items) <= 20


def test_the_sample_pack_covers_the_wizard_choices(pack: ContentPack):
    assert set(pack.who_tags) >= {
        "parent_small_children", "elderly_or_carer", "disability", "foreign_resident",
    }  # fmt: skip
    assert set(pack.what_tags) >= {
        "health", "benefits", "childcare", "disaster", "waste", "procedures",
    }  # fmt: skip
    for tag in pack.what_tags:
        assert pack.rank(set(), {tag}, TODAY, "en"), f"nothing to show for {tag}"
    for tag in pack.who_tags:
        assert any(r.item.who for r in pack.rank({tag}, set(), TODAY, "en")), tag


def test_the_sample_pack_has_only_sample_links_and_emergency_numbers(pack: ContentPack):
    phone = re.compile(r"(?<!\d)(?:\d{2,5}-\d{1,4}-\d{3,4}|#\d{4}|0120)")
    for item in pack.items:
        assert item.link is None or item.link.startswith("https://example.org/")
        for text in [*item.title.values(), *item.body.values()]:
            assert not phone.search(text), f"{item.id}: {text}"


def test_items_show_in_the_resident_s_language(pack: ContentPack):
    ja = pack.rank({"foreign_resident"}, {"procedures"}, TODAY, "ja")
    vi = pack.rank({"foreign_resident"}, {"procedures"}, TODAY, "vi")
    assert [r.item.id for r in ja] == [r.item.id for r in vi]
    assert ja[0].title == ja[0].item.title["ja"]
    assert vi[0].body == vi[0].item.body["vi"]
    assert ja[0].title != vi[0].title


def test_an_expired_sample_item_is_never_shown_today(pack: ContentPack):
    everything = _ids(pack, set(), set(pack.what_tags))
    assert "disaster-drill-2026" not in everything
    assert "recycling-rules-2027" not in everything
    assert "disaster-drill-2026" in _ids(pack, set(), {"disaster"}, date(2026, 8, 20))


# --- Ranking ----------------------------------------------------------------------------------


def test_items_outside_their_validity_are_never_shown():
    pack = ContentPack.load(json.dumps(_small()).encode(), languages=SMALL)
    shown = _ids(pack, set(), {"health"})
    assert "expired" not in shown
    assert "future" not in shown
    assert "last-day" in shown
    assert "future" in _ids(pack, set(), {"health"}, date(2026, 11, 27))


def test_items_aimed_at_the_resident_come_first_and_others_aimed_elsewhere_are_left_out():
    pack = ContentPack.load(json.dumps(_small()).encode(), languages=SMALL)
    shown = _ids(pack, {"parent"}, {"health"})
    assert shown[0] == "for-parents"
    assert "for-seniors" not in shown
    assert "for-everyone" in shown
    assert "waste" not in shown


def test_the_city_priority_lifts_an_item_and_near_deadlines_break_ties():
    pack = ContentPack.load(json.dumps(_small()).encode(), languages=SMALL)
    assert _ids(pack, set(), {"health"}) == [
        "boosted", "last-day", "for-everyone", "for-parents", "for-seniors",
    ]  # fmt: skip
    ranked = pack.rank({"parent"}, {"health"}, TODAY, "ja")
    assert [r.score for r in ranked] == [8, 6, 3, 3]
    assert ranked[0].matched_who == {"parent"}
    assert ranked[0].matched_what == {"health"}


def test_choosing_nothing_shows_every_valid_item():
    pack = ContentPack.load(json.dumps(_small()).encode(), languages=SMALL)
    assert len(_ids(pack, set(), set())) == 6


def test_ranking_in_a_language_the_pack_lacks_is_a_clear_error(pack: ContentPack):
    with pytest.raises(ContentPackError, match="no language 'fr'"):
        pack.rank(set(), {"health"}, TODAY, "fr")


# --- Validation and replacement ---------------------------------------------------------------


def test_validation_lists_every_reason_not_just_the_first():
    data = copy.deepcopy(_small())
    data["items"][0]["title"]["ja"] = ""
    data["items"][1]["what"] = ["food"]
    data["items"][2]["link"] = "javascript:alert(1)"
    data["items"][3]["valid_from"] = "2026-12-01"
    data["items"][3]["valid_to"] = "2026-11-01"
    data["items"][4]["id"] = "for-parents"
    data["items"][5]["priority"] = 9
    data["who"]["senior"]["en"] = " "
    assert validate_pack(data, languages=SMALL) == [
        "who.senior: missing or empty in 'en'",
        "items[0].title: missing or empty in 'ja'",
        "items[1].what: unknown tag 'food'",
        "items[2].link: 'javascript:alert(1)': the scheme must be https:, tel: or mailto: "
        "(not javascript:)",
        "items[3]: valid_to 2026-11-01 is before valid_from 2026-12-01",
        "items[4].id: 'for-parents' appears twice",
        "items[5].priority: must be a whole number 0-3",
    ]


def test_a_pack_of_another_version_or_no_pack_at_all_is_refused():
    assert validate_pack({**_small(), "version": 2}, languages=SMALL) == [
        "version: 2 is not supported (this kiosk reads version 1)"
    ]
    assert validate_pack("items: []") == ["the pack is not a mapping"]


def test_a_bad_pack_is_refused_with_its_reasons_and_the_old_one_kept():
    store = ContentStore(ContentPack.load())
    bad = copy.deepcopy(_data())
    bad["items"][0]["body"]["vi"] = ""
    reasons = store.replace(yaml.safe_dump(bad, allow_unicode=True).encode())
    assert reasons == ["items[0].body: missing or empty in 'vi'"]
    assert store.pack.id == "sample-city"
    assert store.replace(b"\xff\xfe not text") == ["not UTF-8 text (invalid start byte at byte 0)"]
    assert "not valid JSON" in store.replace(b'{"format": ')[0]
    assert "more than" in store.replace(b"#" * (3 * 1024 * 1024))[0]
    assert store.pack.id == "sample-city"


def test_a_good_pack_replaces_the_current_one_as_yaml_or_json():
    store = ContentStore(ContentPack.load(), languages=SMALL)
    assert store.replace(json.dumps(_small()).encode()) == []
    assert store.pack.id == "small"
    assert store.replace(DEFAULT_PACK.read_bytes()) == []
    assert store.pack.id == "sample-city"


def test_the_pack_file_check_reports_problems(tmp_path):
    assert check_pack_file(DEFAULT_PACK) == []
    assert "cannot read" in check_pack_file(tmp_path / "missing.yaml")[0]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**_small(), "items": []}), encoding="utf-8")
    assert check_pack_file(bad, languages=SMALL) == ["items: must be a non-empty list"]
    with pytest.raises(ContentPackError, match="items: must be a non-empty list"):
        ContentPack.load(bad, languages=SMALL)
