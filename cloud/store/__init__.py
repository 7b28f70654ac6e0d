"""Stores of record behind one small interface: InfluxDB (v1 and v2 APIs) and embedded SQLite.

:func:`open_store` picks the backend from :class:`StoreSettings`; every backend writes
(:class:`Store`) and answers the web app's queries (:class:`~cloud.store.read.ReadSide`). The
backends: :mod:`cloud.store.influx_v1`, :mod:`cloud.store.influx_v2`, :mod:`cloud.store.sqlite`.

>>> store = open_store(StoreSettings(kind="sqlite", path=":memory:"))
>>> store.name
'sqlite'
"""

from __future__ import annotations

import re
from typing import Protocol

from cloud.errors import ConfigError
from cloud.store.base import Point, Store
from cloud.store.read import Bucket, LatestRow, ReadSide
from cloud.store.settings import StoreSettings

__all__ = [
    "Bucket",
    "LatestRow",
    "Point",
    "ReadSide",
    "ReadableStore",
    "Store",
    "StoreSettings",
    "api_for_version",
    "open_store",
]

_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


class ReadableStore(Store, ReadSide, Protocol):
    """A store that writes and answers the read side: what :func:`open_store` returns."""


def api_for_version(version: str) -> str:
    """The API an InfluxDB speaks, from its ``X-Influxdb-Version``: "influx_v1" below 1.8.

    >>> api_for_version("1.6.7~rc0"), api_for_version("1.8.10"), api_for_version("v2.7.4")
    ('influx_v1', 'influx_v2', 'influx_v2')
    """
    match = _VERSION.match(version.strip())
    if match is None:
        raise ConfigError(
            f"cannot tell the InfluxDB API from version {version!r}: set store.kind to"
            " 'influx_v1' or 'influx_v2'"
        )
    major, minor = int(match[1]), int(match[2])
    return "influx_v1" if (major, minor) < (1, 8) else "influx_v2"


def open_store(settings: StoreSettings) -> ReadableStore:
    """The store ``settings`` describe; ``kind="auto"`` asks the server's ``/ping`` first.

    Raises :class:`~cloud.errors.StoreUnavailable` when ``auto`` cannot reach the server and
    :class:`~cloud.errors.ConfigError` when the settings do not fit the server found.
    """
    # Backends are imported when chosen: a SQLite deployment never loads influxdb-client.
    kind = settings.kind
    if kind == "sqlite":
        from cloud.store.sqlite import SqliteStore

        return SqliteStore(settings.path, timeout_s=settings.timeout_s)
    assert settings.url is not None  # StoreSettings checks it for every Influx kind
    from cloud.store.influx_v1 import InfluxHttp, InfluxV1Store

    if kind == "auto":
        http = InfluxHttp(settings.url, timeout_s=settings.timeout_s)
        try:
            version = http.version()
        finally:
            http.close()
        kind = "influx_v1" if api_for_version(version) == "influx_v1" else "influx_v2"
    secret = settings.password_secret()
    password = secret.get_secret_value() if secret else None
    if kind == "influx_v1":
        return InfluxV1Store(
            settings.url,
            database=settings.database,
            retention_policy=settings.retention_policy,
            username=settings.username,
            password=password,
            timeout_s=settings.timeout_s,
            gzip_body=settings.gzip,
        )
    secret_token = settings.token_secret()
    token = secret_token.get_secret_value() if secret_token else None
    if token is None and settings.username is not None:
        # InfluxDB 1.8's v2 API takes "user:password" as the token.
        token = f"{settings.username}:{password or ''}"
    if token is None:
        raise ConfigError("store: the InfluxDB v2 API needs store.token (or username/password)")
    bucket = settings.bucket
    if bucket is None:
        bucket = settings.database + (
            f"/{settings.retention_policy}" if settings.retention_policy else ""
        )
    from cloud.store.influx_v2 import InfluxV2Store

    return InfluxV2Store(
        settings.url,
        token=token,
        org=settings.org or "-",
        bucket=bucket,
        timeout_s=settings.timeout_s,
        gzip_body=settings.gzip,
    )
