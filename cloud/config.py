"""The collector's config: one TOML file, parsed once at start into typed frozen objects.

Sections: ``[mqtt]``, ``[store]``, ``[batch]``, ``[deadletter]``, ``[fleet]``, ``[retry]``,
``[status]`` (see :mod:`cloud.collector.settings` and :mod:`cloud.store.settings`). Every key can
be overridden by an environment variable ``MACHIKADO_<SECTION>__<KEY>``, e.g.
``MACHIKADO_STORE__URL``; the environment wins over the file. A bad file raises
:class:`~cloud.errors.ConfigError` naming each bad key.

>>> cfg = CollectorConfig.model_validate({"mqtt": {"shared_group": "g1"}})
>>> cfg.store.kind, cfg.batch.max_points, cfg.fleet.unknown_nodes
('sqlite', 5000, 'reject')
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from cloud.collector.settings import (
    BatchSection,
    DeadLetterSection,
    FleetSection,
    MqttSection,
    RetrySection,
    StatusSection,
)
from cloud.errors import ConfigError
from cloud.store.settings import StoreSettings


class CollectorConfig(BaseSettings):
    """The whole collector config."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="MACHIKADO_",
        env_nested_delimiter="__",
        nested_model_default_partial_update=True,
    )

    mqtt: MqttSection = MqttSection()
    store: StoreSettings = StoreSettings()
    batch: BatchSection = BatchSection()
    deadletter: DeadLetterSection = DeadLetterSection()
    fleet: FleetSection = FleetSection()
    retry: RetrySection = RetrySection()
    status: StatusSection = StatusSection()

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


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "config"


def load_config(path: Path) -> CollectorConfig:
    """Read a collector config file, apply environment overrides, and validate it whole.

    Relative paths in the file (dead-letter store, manifest, SQLite store) stay relative to the
    working directory, as a systemd unit's ``WorkingDirectory`` sets it.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot read it: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: not valid TOML: {exc}") from None
    try:
        return CollectorConfig(**data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(f"{_where(err['loc'])}: {msg}")
        raise ConfigError(f"config {path}: " + "; ".join(problems)) from None
