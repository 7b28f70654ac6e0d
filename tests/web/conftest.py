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

from cloud.fleet import load_fleet
from cloud.store.base import Point
from cloud.store.read import to_ns
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


def fleet_points(fleet_path: Path, at: datetime) -> list[Point]:
    """A point of every figure of every node of a manifest, at about ``at``."""
    fleet = load_fleet(fleet_path)
    out: list[Point] = []
    for i, n in enumerate(fleet.nodes):
        tags = {"node": n.id, "trial": n.trial, "site": n.site}
        t = to_ns(at + timedelta(minutes=i))
        out.append(
            Point(
                "link",
                {"node": n.id, "stream": "s-aaaaaaaa"},
                {"seq": 1, "readings": 3, "latency_s": 0.2},
                t,
            )
        )
        out.append(Point("node_health", tags, {"outbox_readings": 12}, t))
        if n.kind == "restroom":
            out += [
                Point("visit", {**tags, "stall": "1"}, {"duration_s": 80.0}, t),
                Point("occupancy", {**tags, "stall": "1"}, {"occupied_s": 600.0}, t),
                Point("help_call", tags, {"pressed": True}, t),
                Point("health_check", {**tags, "device": "scale"}, {"weight_kg": 61.5}, t),
                Point("health_check", {**tags, "device": "bp"}, {"systolic_mmhg": 121.0}, t),
                Point("health_check", {**tags, "device": "thermo"}, {"temperature_c": 36.4}, t),
            ]
        elif n.kind == "vehicle":
            out += [
                Point("trip", tags, {"distance_m": 1800.0, "duration_s": 600.0}, t),
                Point("ride", tags, {"battery_pct": 71.0, "speed_mps": 4.0}, t),
            ]
        elif n.kind == "station":
            out.append(Point("vehicle_arrived", {**tags, "vehicle": "7"}, {"odometer_m": 1.0}, t))
            for vehicle in ("7", "8"):
                out.append(
                    Point("parked_vehicle", {**tags, "vehicle": vehicle}, {"odometer_m": 1.0}, t)
                )
        elif n.kind == "kiosk":
            for dim in ("sessions", "consultation"):
                out.append(
                    Point(
                        "kiosk_usage",
                        {**tags, "dimension": dim, "value": "all"},
                        {"count": 6, "count_text": "6"},
                        t,
                    )
                )
            language = {**tags, "dimension": "language", "value": "vi"}
            out.append(Point("kiosk_usage", language, {"count": 5, "count_text": "5"}, t))
    return out


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
