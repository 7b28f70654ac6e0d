"""Keeping the web app's message catalogs in step with its code and templates.

``python -m cloud.web.catalogs`` (``make web-catalogs``) extracts every message into
``locale/messages.pot``, merges it into each language's ``messages.po`` (new messages come in
empty, dropped ones go) and compiles the ``.mo`` files the app reads. A test runs
:func:`problems` so that an untranslated, fuzzy or stale message fails the build.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

HERE = Path(__file__).resolve().parent
LOCALE = HERE / "locale"
TRANSLATED = ("ja",)
KEYWORDS = {"_": None, "gettext_": None, "N_": None, "ngettext_": (1, 2)}
METHODS = [
    ("templates/**.html", "jinja2"),
    ("**.py", "python"),
]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true"}}


def extract() -> Catalog:
    """Every message of the code and templates."""
    template = Catalog(project="machikado", fuzzy=False)
    for _file, _line, message, _comments, context in extract_from_dir(
        str(HERE), METHODS, keywords=KEYWORDS, options_map=OPTIONS
    ):
        template.add(message, context=context)
    return template


def _po(language: str) -> Path:
    return LOCALE / language / "LC_MESSAGES" / "messages.po"


def _mo_bytes(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def update() -> None:
    """Extract, merge into every language's .po, compile the .mo files."""
    template = extract()
    with (LOCALE / "messages.pot").open("wb") as fh:
        write_po(fh, template, omit_header=True, no_location=True, sort_output=True, width=100)
    for language in TRANSLATED:
        with _po(language).open("rb") as fh:
            catalog = read_po(fh, locale=language)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        with _po(language).open("wb") as fh:
            write_po(fh, catalog, no_location=True, sort_output=True, width=100)
        _po(language).with_suffix(".mo").write_bytes(_mo_bytes(catalog))


def problems() -> list[str]:
    """What is wrong with the catalogs: messages missing, untranslated, fuzzy, or a stale .mo."""
    found: list[str] = []
    wanted = {m.id for m in extract() if m.id}
    for language in TRANSLATED:
        with _po(language).open("rb") as fh:
            catalog = read_po(fh, locale=language)
        have = {m.id for m in catalog if m.id}
        found += [f"{language}: {m!r} is not in the catalog" for m in sorted(wanted - have)]
        found += [f"{language}: {m!r} is no longer used" for m in sorted(have - wanted)]
        for m in catalog:
            if m.id and (not m.string or m.fuzzy):
                found.append(f"{language}: {m.id!r} is untranslated or fuzzy")
        if _po(language).with_suffix(".mo").read_bytes() != _mo_bytes(catalog):
            found.append(f"{language}: messages.mo is older than its .po (make web-catalogs)")
    return found


if __name__ == "__main__":
    update()
    for problem in problems():
        print(problem, file=sys.stderr)
