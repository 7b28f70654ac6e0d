"""Config files of every part: TOML parsed once, environment overrides, every bad key named.

A node's and a collector's config are both :class:`FileSettings`: typed frozen sections read
from one TOML file, where any key can be overridden by ``MACHIKADO_<SECTION>__<KEY>`` (the
environment wins over the file). :func:`load_settings` turns every problem into one error that
names each bad key, never a traceback later.

Secrets (MQTT and store passwords, tokens) are :class:`~pydantic.SecretStr`, never printed, and
best kept in files: a ``*_file`` key names one, read by :func:`read_secret` when the part
starts. Under systemd a unit passes them with ``LoadCredential=NAME:PATH`` and the config says
``password_file = "$CREDENTIALS_DIRECTORY/NAME"``.

Clear text is for the loopback only: :func:`is_loopback` tells whether a broker or store host is
on this machine, where the parts' configs allow a connection without TLS; anywhere else a
section's ``allow_insecure = true`` must say so.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import SecretStr, ValidationError
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

#: Where systemd puts a unit's ``LoadCredential=`` files; a secret's path may start with it.
CREDENTIALS = "CREDENTIALS_DIRECTORY"
_CREDENTIAL_PREFIXES = (f"${CREDENTIALS}/", f"${{{CREDENTIALS}}}/")


class SecretFileError(MachikadoError):
    """A secret's file cannot be read; the message names the key and the file, not the secret."""


def secret_path(path: Path, *, key: str, env: Mapping[str, str] | None = None) -> Path:
    """``path`` with a leading ``$CREDENTIALS_DIRECTORY/`` replaced by systemd's directory.

    >>> secret_path(Path("$CREDENTIALS_DIRECTORY/mqtt-password"), key="mqtt.password_file",
    ...             env={"CREDENTIALS_DIRECTORY": "/run/credentials/machikado-edge.service"})
    PosixPath('/run/credentials/machikado-edge.service/mqtt-password')
    """
    text = str(path)
    for prefix in _CREDENTIAL_PREFIXES:
        if text.startswith(prefix):
            base = (os.environ if env is None else env).get(CREDENTIALS)
            if not base:
                raise SecretFileError(
                    f"{key}: {text} is a systemd credential, but ${CREDENTIALS} is not set "
                    "(start it from its unit, which passes the file with LoadCredential=)"
                )
            return Path(base) / text.removeprefix(prefix)
    return path


def read_secret(path: Path, *, key: str) -> SecretStr:
    """The secret held in the file at ``path`` (see :func:`secret_path`), without surrounding
    whitespace; ``key`` names the config key in the error if it cannot be read."""
    where = secret_path(path, key=key)
    try:
        return SecretStr(where.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise SecretFileError(f"{key}: cannot read {where}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SecretFileError(f"{key}: {where} is not UTF-8 text") from None


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
