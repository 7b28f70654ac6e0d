"""Config files of every part: TOML parsed once, environment overrides, every bad key named.

A node's and a collector's config are both :class:`FileSettings`: typed frozen sections read
from one TOML file, where any key can be overridden by ``MACHIKADO_<SECTION>__<KEY>`` (the
environment wins over the file). :func:`load_settings` turns every problem into one error that
names each bad key, never a traceback later.

Clear text is for the loopback only: :func:`is_loopback` tells whether a broker or store host is
on this machine, where the parts' configs allow a connection without TLS; anywhere else a
section's ``allow_insecure = true`` must say so.
"""

from __future__ import annotations

import ipaddress
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


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine's loopback: ``localhost``, 127.0.0.0/8 or ``::1``.

    >>> [is_loopback(h) for h in ("localhost", "127.0.0.2", "[::1]", "10.0.0.1", "broker")]
    [True, True, True, False, False]
    """
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a name other than localhost: it may resolve anywhere
        return False


def insecure_broker(host: str) -> str:
    """The config error for ``tls = false`` towards a broker that is not on the loopback."""
    return (
        f"tls is false but broker host {host!r} is not on the loopback: set tls = true "
        "(or allow_insecure = true to send passwords and data in clear text)"
    )


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
