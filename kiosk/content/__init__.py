"""Content packs: format, validation, the current pack, and the wizard's ranking."""

from kiosk.content.pack import (
    DEFAULT_PACK,
    ContentPack,
    ContentStore,
    Item,
    RankedItem,
    check_pack_bytes,
    check_pack_file,
    kiosk_languages,
    link_reasons,
    validate_pack,
)

__all__ = [
    "DEFAULT_PACK",
    "ContentPack",
    "ContentStore",
    "Item",
    "RankedItem",
    "check_pack_bytes",
    "check_pack_file",
    "kiosk_languages",
    "link_reasons",
    "validate_pack",
]
