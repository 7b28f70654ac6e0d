"""Which store to open and how to reach it: the ``[store]`` section of the collector's config.

>>> StoreSettings(kind="influx_v1", url="http://127.0.0.1:8086").database
'machikado'
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

StoreKind = Literal["sqlite", "influx_v1", "influx_v2", "auto"]


class StoreSettings(BaseModel):
    """A store: embedded SQLite (``path``) or InfluxDB (``url`` and its credentials).

    ``kind="auto"`` asks the server's ``/ping``: InfluxDB below 1.8 speaks only the v1 API,
    1.8 and later the v2 API (for 1.8, ``username:password`` serves as the token, ``-`` as the
    org and ``database/retention_policy`` as the bucket when those are not given).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: StoreKind = "sqlite"
    path: Path = Field(default=Path("var/cloud/store.sqlite"), description="The SQLite file.")
    url: str | None = Field(default=None, description="InfluxDB's base URL, http(s)://host:port.")
    database: str = Field(default="machikado", min_length=1, description="v1 database.")
    retention_policy: str = Field(default="", description="v1 retention policy; '' = default.")
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = Field(default=None, description="v2 API token.")
    org: str | None = None
    bucket: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, description="Per HTTP request.")
    gzip: bool = Field(default=False, description="Compress write bodies (for a remote store).")

    @model_validator(mode="after")
    def _complete(self) -> StoreSettings:
        if self.kind != "sqlite":
            if not self.url:
                raise ValueError(f"store kind {self.kind!r} needs url (http://host:port)")
            if not self.url.startswith(("http://", "https://")):
                raise ValueError(f"url {self.url!r} must start with http:// or https://")
        if self.kind == "influx_v2":
            missing = [k for k in ("token", "org", "bucket") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"store kind 'influx_v2' needs {', '.join(missing)}")
        return self
