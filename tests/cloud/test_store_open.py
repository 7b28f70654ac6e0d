"""open_store: the backend by config, or by what the server's /ping reports; settings errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cloud.errors import ConfigError, StoreUnavailable
from cloud.store import StoreSettings, api_for_version, open_store
from cloud.store.base import Point
from cloud.store.influx_v1 import InfluxV1Store
from cloud.store.influx_v2 import InfluxV2Store
from cloud.store.sqlite import SqliteStore
from tests.cloud.recording_http import Canned, RecordingHTTPServer
from tests.services import InfluxServer, free_port


def test_sqlite_is_the_default_and_creates_its_folder(tmp_path: Path) -> None:
    store = open_store(StoreSettings(path=tmp_path / "var" / "store.sqlite"))
    assert isinstance(store, SqliteStore)
    store.write([Point("m", {}, {"v": 1}, 1)])
    assert (tmp_path / "var" / "store.sqlite").exists()
    store.close()


@pytest.mark.integration
def test_auto_picks_the_v1_api_for_debians_influxd(influxdb: InfluxServer) -> None:
    store = open_store(StoreSettings(kind="auto", url=influxdb.url, database="city"))
    assert isinstance(store, InfluxV1Store)
    assert store.ping().startswith("1.6.7")
    store.write([Point("m", {}, {"v": 1}, 1)])
    assert store.count("m", by=None) == {"": 1}
    store.close()


@pytest.mark.parametrize("version", ["1.8.10", "v2.7.11", "2.0.0-beta"])
def test_auto_picks_the_v2_api_from_18_on(version: str) -> None:
    with RecordingHTTPServer() as server:
        server.answer("/ping", Canned(204, b"", {"X-Influxdb-Version": version}))
        store = open_store(
            StoreSettings(kind="auto", url=server.url, token="t", org="city", bucket="b")
        )
        assert isinstance(store, InfluxV2Store)
        store.write([Point("m", {}, {"v": 1}, 1)])
        store.close()
    write = server.requests[-1]
    assert write.path == "/api/v2/write"
    assert write.param("bucket") == "b"


def test_influxdb_18_gets_user_password_as_token_and_database_rp_as_bucket() -> None:
    with RecordingHTTPServer() as server:
        server.answer("/ping", Canned(204, b"", {"X-Influxdb-Version": "1.8.10"}))
        settings = StoreSettings(
            kind="auto",
            url=server.url,
            database="city",
            retention_policy="year",
            username="collector",
            password="pw",
        )
        store = open_store(settings)
        store.write([Point("m", {}, {"v": 1}, 1)])
        store.close()
    write = server.requests[-1]
    assert write.headers["authorization"] == "Token collector:pw"
    assert (write.param("org"), write.param("bucket")) == ("-", "city/year")


def test_auto_without_a_server_is_unavailable() -> None:
    port = free_port("127.0.0.1")
    with pytest.raises(StoreUnavailable):
        open_store(StoreSettings(kind="auto", url=f"http://127.0.0.1:{port}", timeout_s=2))


def test_a_server_without_a_version_asks_for_the_kind() -> None:
    with RecordingHTTPServer() as server, pytest.raises(ConfigError, match=r"store\.kind"):
        open_store(StoreSettings(kind="auto", url=server.url))


def test_versions_map_to_apis() -> None:
    assert api_for_version("1.6.7~rc0") == "influx_v1"
    assert api_for_version("1.7.11") == "influx_v1"
    assert api_for_version("1.8.0") == "influx_v2"
    assert api_for_version("3.0.1") == "influx_v2"


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"kind": "influx_v1"}, "needs url"),
        ({"kind": "influx_v1", "url": "localhost:8086"}, "must start with http"),
        ({"kind": "influx_v2", "url": "http://x", "token": "t"}, "needs org, bucket"),
        ({"kind": "mongo"}, "kind"),
        ({"kind": "sqlite", "colour": "red"}, "colour"),
        ({"kind": "sqlite", "timeout_s": 0}, "timeout_s"),
    ],
)
def test_incomplete_settings_name_what_is_missing(settings: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        StoreSettings.model_validate(settings)


def test_secrets_do_not_show_in_the_settings_repr() -> None:
    settings = StoreSettings(kind="influx_v2", url="https://x", token="s3cret", org="o", bucket="b")
    assert "s3cret" not in repr(settings)
