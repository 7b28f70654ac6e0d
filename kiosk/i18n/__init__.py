"""The kiosk's UI translations (see :mod:`kiosk.i18n.catalog` for the file format)."""

from kiosk.i18n.catalog import DEFAULT_DIR, Catalog, Language, check_translations, placeholders

__all__ = ["DEFAULT_DIR", "Catalog", "Language", "check_translations", "placeholders"]
