"""Which store to open and how to reach it: the ``[store]`` section of the collector's config.

>>> StoreSettings(kind="influx_v1", url="http://127.0.0.1:8086").database
'machikado'
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from machikado.settings import is_loopback, read_secret

StoreKind = Literal["sqlite", "influx_v1", "influx_v2", "auto"]


class StoreSettings(BaseModel):
    """A store: embedded SQLite (``path``) or InfluxDB (``url`` and its credentials).

    ``kind="auto"`` asks the server's ``/ping``: InfluxDB below 1.8 speaks only the v1 API,
    1.8 and later the v2 API (for 1.8, ``username:password`` serves as the token, ``-`` as the
    org and ``database/retention_policy`` as the bucket when those are not given).
    """

    # hide_input_in_errors: an error must not repeat a password or token it was given.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    kind: StoreKind = "sqlite"
    path: Path = Field(default=Path("var/cloud/store.sqlite"), description="The SQLite file.")
    url: str | None = Field(default=None, description="InfluxDB's base URL, http(s)://host:port.")
    database: str = Field(default="machikado", min_length=1, description="v1 database.")
    retention_policy: str = Field(default="", description="v1 retention policy; '' = default.")
    username: str | None = None
    password: SecretStr | None = None
    #: A file holding the password, read when the store is opened;
    #: ``$CREDENTIALS_DIRECTORY/store-password`` for the unit's systemd credential.
    password_file: Path | None = None
    token: SecretStr | None = Field(default=None, description="v2 API token.")
    #: A file holding the token; ``$CREDENTIALS_DIRECTORY/store-token`` under systemd.
    token_file: Path | None = None
    org: str | None = None
    bucket: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, description="Per HTTP request.")
    gzip: bool = Field(default=False, description="Compress write bodies (for a remote store).")
    allow_insecure: bool = Field(
        default=False,
        description="Allow an http:// url to a store not on the loopback (a closed test network).",
    )

    @model_validator(mode="after")
    def _complete(self) -> StoreSettings:
        if self.kind != "sqlite":
            if not self.url:
                raise ValueError(f"store kind {self.kind!r} needs url (http://host:port)")
            if not self.url.startswith(("http://", "https://")):
                raise ValueError(f"url {self.url!r} must start with http:// or https://")
        for key in ("password", "token"):
            if getattr(self, key) is not None and getattr(self, f"{key}_file") is not None:
                raise ValueError(f"give {key} or {key}_file, not both")
        if self.kind == "influx_v2":
            missing = [k for k in ("token", "org", "bucket") if getattr(self, k) is None]
            if self.token_file is not None:
                missing.remove("token")
            if missing:
                raise ValueError(f"store kind 'influx_v2' needs {', '.join(missing)}")
        if self.kind != "sqlite" and self.url and not self.allow_insecure:
            parts = urlsplit(self.url)
            if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
                raise ValueError(
                    f"url {self.url!r} is http:// to a host not on the loopback: use https:// "
                    "(or allow_insecure = true to send credentials and data in clear text)"
                )
        return self

    def password_secret(self) -> SecretStr | None:
        """The password: read from ``password_file`` when one is given (raises SecretFileError)."""
        if self.password_file is not None:
            return read_secret(self.password_file, key="store.password_file")
        return self.password

    def token_secret(self) -> SecretStr | None:
        """The token: read from ``token_file`` when one is given (raises SecretFileError)."""
        if self.token_file is not None:
            return read_secret(self.token_file, key="store.token_file")
        return self.token
