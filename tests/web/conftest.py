"""Fixtures of the web app's tests: its database on SQLite and on a real PostgreSQL, a store
with points in it, a clock the test moves, and a logged-in client per role."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cloud.store.sqlite import SqliteStore
from cloud.web.accounts import create_user
from cloud.web.app import create_app
from cloud.web.db import Database
from cloud.web.settings import WebConfig
from tests.services.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "firmware_config" / "fleet.toml"
NOW = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
PASSWORD = "a long enough password"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session; each test takes a database of its own."""
    base = Path(tempfile.mkdtemp(prefix="machikado-postgres-"))
    base.chmod(0o711)
    server = PostgresServer(base)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def web_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The web app's database, migrated: a SQLite file, then a real PostgreSQL database."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'web.sqlite'}")
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        db = Database(server.new_database())
    db.upgrade()
    yield db
    db.dispose()


class Clock:
    """The app's clock, moved by the test."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


@dataclass
class Web:
    """An app on a store and a database, and helpers to log in as someone."""

    app: FastAPI
    db: Database
    store: SqliteStore
    clock: Clock

    def client(self, *, language: str = "en") -> TestClient:
        return TestClient(self.app, headers={"accept-language": language})

    def add_user(self, username: str, role: str) -> None:
        with self.db.session() as s:
            create_user(s, username=username, password=PASSWORD, role=role, actor="test")

    def login(self, username: str, role: str = "staff", *, language: str = "en") -> TestClient:
        self.add_user(username, role)
        client = self.client(language=language)
        page = client.get("/login")
        answer = client.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        return client


@pytest.fixture
def make_web(tmp_path: Path) -> Iterator[Callable[..., Web]]:
    made: list[Web] = []

    def make(*, db: Database | None = None, manifest: Path = MANIFEST, **web: Any) -> Web:
        config = WebConfig.model_validate(
            {"web": web, "fleet": {"manifest": str(manifest)}, "store": {"kind": "sqlite"}}
        )
        database = db or Database("sqlite://")
        store = SqliteStore(tmp_path / f"store-{len(made)}.sqlite")
        clock = Clock()
        app = create_app(config, db=database, store=store, clock=clock)
        built = Web(app, database, store, clock)
        made.append(built)
        return built

    yield make
    for w in made:
        w.store.close()


@pytest.fixture
def web(make_web: Callable[..., Web]) -> Web:
    return make_web()
