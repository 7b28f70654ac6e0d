"""The web app's config: one TOML file, parsed once at start into typed frozen objects.

Sections: ``[web]`` (where it listens, cookies, language, session lifetime, login throttle),
``[database]`` (its own state: users, sessions, audit log, settings), ``[store]`` (the store of
record it reads telemetry from, as the collector's ``[store]``) and ``[fleet]`` (the manifest).
Every key can be overridden by ``MACHIKADO_<SECTION>__<KEY>``; a bad file is one
:class:`~cloud.errors.ConfigError` naming each bad key.

>>> cfg = WebConfig.model_validate({"web": {"port": 8100}})
>>> cfg.web.port, cfg.database.url, cfg.web.cookies_secure
(8100, 'sqlite:///var/cloud/web.sqlite', False)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.collector.settings import FleetSection
from cloud.errors import ConfigError
from cloud.store.settings import StoreSettings
from machikado.settings import FileSettings, is_loopback, load_settings

Language = Literal["ja", "en"]


class WebSection(BaseModel):
    """Where the app listens and how it treats browsers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8100, ge=1, le=65535)
    #: Cookies with ``Secure``: on by default for anything but loopback, where a reverse proxy
    #: terminating TLS is expected in front.
    secure_cookies: bool | None = None
    language: Language = Field(default="ja", description="Language for a browser that asks none.")
    timezone: str = Field(default="Asia/Tokyo", description="How times are shown (stored in UTC).")
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    idle_minutes: float = Field(default=60.0, gt=0)
    #: Failed logins of one account before it is locked for ``lockout_minutes``.
    max_failed_logins: int = Field(default=5, ge=1)
    lockout_minutes: float = Field(default=15.0, gt=0)
    #: Login attempts one client address may make per minute, whatever the account.
    login_per_minute: int = Field(default=10, ge=1)
    #: A node is "stale" after this many expected intervals without data, "offline" after
    #: ``offline_after`` intervals.
    stale_after: float = Field(default=3.0, gt=0)
    offline_after: float = Field(default=12.0, gt=0)
    #: Seconds between a kind's reports, where a fleet sends more or less often than every
    #: node's default health report each minute: ``expected_interval_s = {vehicle = 30}``.
    expected_interval_s: dict[str, float] = Field(default_factory=dict)
    #: How often an open fleet page refreshes its table (htmx), in seconds.
    refresh_s: int = Field(default=30, ge=1, le=3600)
    #: Keep daily rollups in the store (written with the [store] credentials, which then need
    #: write access): completeness and daily figures over months read them, not raw points.
    rollups: bool = True

    @model_validator(mode="after")
    def _order(self) -> WebSection:
        if self.offline_after <= self.stale_after:
            raise ValueError("offline_after must be more than stale_after")
        bad = [k for k, v in self.expected_interval_s.items() if not v > 0]
        if bad:
            raise ValueError(f"expected_interval_s must be more than 0 (not for {', '.join(bad)})")
        return self

    @property
    def cookies_secure(self) -> bool:
        """Whether cookies carry ``Secure``: as configured, else unless bound to loopback."""
        if self.secure_cookies is not None:
            return self.secure_cookies
        return not is_loopback(self.host)


class DatabaseSection(BaseModel):
    """The web app's own database (SQLAlchemy URL): SQLite by default, PostgreSQL deployed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(
        default="sqlite:///var/cloud/web.sqlite",
        description="sqlite:///path or postgresql+psycopg://user@host/db",
    )
    #: A file holding the database password (mode 0600, or a systemd credential such as
    #: ``$CREDENTIALS_DIRECTORY/db-password``), for URLs written without one.
    password_file: Path | None = None

    @model_validator(mode="after")
    def _scheme(self) -> DatabaseSection:
        if not self.url.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError(
                f"url {self.url.split('://')[0]}://... must be sqlite:// or postgresql+psycopg://"
            )
        return self


class WebConfig(FileSettings):
    """The whole web app config."""

    web: WebSection = WebSection()
    database: DatabaseSection = DatabaseSection()
    store: StoreSettings = StoreSettings()
    fleet: FleetSection = FleetSection()


def load_config(path: Path) -> WebConfig:
    """Read a web app config file, apply environment overrides, and validate it whole."""
    return load_settings(WebConfig, path, ConfigError)
