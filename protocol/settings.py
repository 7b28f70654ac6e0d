"""Config files of every part: TOML parsed once, environment overrides, every bad key named.

A node's and a collector's config are both :class:`FileSettings`: typed frozen sections read
from one TOML file, where any key can be overridden by ``MACHIKADO_<SECTION>__<KEY>`` (the
environment wins over the file). :func:`load_settings` turns every problem into one error that
names each bad key, never a traceback later.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from protocol.errors import MachikadoError


class FileSettings(BaseSettings):
    """Base of a part's whole config: frozen, no unknown keys, ``MACHIKADO_`` overrides."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="MACHIKADO_",
        env_nested_delimiter="__",
        nested_model_default_partial_update=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file, which is passed in as init values.
        return (env_settings, init_settings)


S = TypeVar("S", bound=FileSettings)


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "config"


def load_settings(cls: type[S], path: Path, error: type[MachikadoError]) -> S:
    """Read ``path``, apply environment overrides, validate it whole; ``error`` names each fault."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"config {path}: cannot read it: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"config {path}: not valid TOML: {exc}") from None
    try:
        return cls(**data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(f"{_where(err['loc'])}: {msg}")
        raise error(f"config {path}: " + "; ".join(problems)) from None
