"""``machikado cloud web ...`` and ``machikado cloud grafana`` as an operator runs them."""

from __future__ import annotations

import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud.rollup import done_days
from cloud.store.base import Point
from cloud.store.read import to_ns
from cloud.store.sqlite import SqliteStore
from cloud.web.db import Database
from cloud.web.db.models import User
from tests.web.conftest import MANIFEST, PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp: Path) -> Path:
    path = tmp / "web.toml"
    path.write_text(
        f"""
[database]
url = "sqlite:///{tmp / "web.sqlite"}"

[store]
kind = "sqlite"
path = "{tmp / "store.sqlite"}"

[fleet]
manifest = "{MANIFEST}"
""",
        encoding="utf-8",
    )
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "machikado.cli", "cloud", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_adduser_reads_the_password_from_a_file_and_refuses_a_weak_one(tmp_path: Path) -> None:
    config = _config(tmp_path)
    secret = tmp_path / "pw"
    secret.write_text("short\n")
    refused = _run(
        "web", "adduser", "sato", "--config", str(config), "--password-file", str(secret)
    )
    assert refused.returncode == 2
    assert "at least 12" in refused.stderr
    secret.write_text(PASSWORD + "\n")
    done = _run(
        "web",
        "adduser",
        "sato",
        "--config",
        str(config),
        "--role",
        "admin",
        "--password-file",
        str(secret),
    )
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    db = Database(f"sqlite:///{tmp_path / 'web.sqlite'}")
    with db.session() as s:
        assert [(u.username, u.role) for u in s.query(User)] == [("sato", "admin")]


def test_a_token_goes_to_a_new_0600_file_and_nowhere_else(tmp_path: Path) -> None:
    config = _config(tmp_path)
    out = tmp_path / "partner.token"
    done = _run("web", "token", "partner-1", "--config", str(config), "--out", str(out))
    assert done.returncode == 0, done.stderr
    token = out.read_text().strip()
    assert token.startswith("mk_")
    assert token not in done.stdout + done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    again = _run("web", "token", "partner-2", "--config", str(config), "--out", str(out))
    assert again.returncode != 0
    assert "exists" in again.stderr


def test_rollup_makes_every_ended_day_once(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = SqliteStore(tmp_path / "store.sqlite")
    start = datetime.now(UTC) - timedelta(days=3)
    store.write(
        [
            Point(
                "link",
                {"node": "rr-01", "stream": "s-aaaaaaaa"},
                {"seq": i, "readings": 1},
                to_ns(start + timedelta(hours=i)),
            )
            for i in range(1, 60)
        ]
    )
    done = _run("web", "rollup", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "days rolled up" in done.stdout
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Tokyo")
    made = done_days(store, start - timedelta(days=1), datetime.now(UTC), zone)
    assert len(made) >= 3
    assert datetime.now(UTC).astimezone(zone).date() not in made
    assert "0 days rolled up" in _run("web", "rollup", "--config", str(config)).stdout
    store.close()


def test_grafana_writes_the_bundle(tmp_path: Path) -> None:
    config = _config(tmp_path)
    done = _run("grafana", "--config", str(config), "--out", str(tmp_path / "grafana"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "grafana/provisioning/datasources/machikado.yaml").exists()
    assert len(list((tmp_path / "grafana/dashboards").glob("*.json"))) == 4
