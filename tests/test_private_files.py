"""What the node and the cloud keep on disk is theirs alone: files 0600 (the SQLite -wal and
-shm too), directories 0700 where we create them, whatever the umask says."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud.deadletter import DeadLetters
from cloud.store import StoreSettings, open_store
from cloud.store.base import Point
from edge.outbox import Outbox
from protocol import Reading


@pytest.fixture(autouse=True)
def _permissive_umask() -> Iterator[None]:
    # The default umask of many systems (022): without care, files come out world-readable.
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _outbox(path: Path) -> None:
    with Outbox(path, node="rr-01") as outbox:
        outbox.append(Reading(m="visit", at=datetime.now(UTC), fields={"n": 1}))
        outbox.commit()
        companions_are_private(path)


def companions_are_private(path: Path) -> None:
    """While the database is open, its -wal and -shm exist: check them then."""
    companions = [path.with_name(path.name + s) for s in ("-wal", "-shm")]
    assert [p.exists() for p in companions] == [True, True]
    assert [oct(mode(p)) for p in companions] == ["0o600", "0o600"]


def test_outbox_file_wal_and_shm_are_0600_in_a_0700_dir(tmp_path: Path) -> None:
    path = tmp_path / "state" / "node" / "outbox.sqlite"
    _outbox(path)
    assert oct(mode(path)) == "0o600"
    assert oct(mode(path.parent)) == "0o700"
    assert oct(mode(path.parent.parent)) == "0o700"


def test_dead_letter_store_and_its_companions_are_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "deadletter.sqlite"
    with DeadLetters(path) as dead:
        dead.add(
            topic="machikado/v1/rr-01/data",
            payload=b"{}",
            reasons=["not an envelope"],
            received_at=datetime.now(UTC),
        )
        companions_are_private(path)
    assert oct(mode(path)) == "0o600"
    assert oct(mode(path.parent)) == "0o700"


def test_embedded_store_and_its_companions_are_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "cloud" / "store.sqlite"
    store = open_store(StoreSettings(kind="sqlite", path=path))
    try:
        store.write([Point("visit", {"node": "rr-01"}, {"n": 1}, 1_764_140_400_000_000_000)])
        companions_are_private(path)
    finally:
        store.close()
    assert oct(mode(path)) == "0o600"
    assert oct(mode(path.parent)) == "0o700"
    assert oct(mode(path.parent.parent)) == "0o700"


def test_an_existing_directory_keeps_the_mode_its_operator_gave_it(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    _outbox(shared / "outbox.sqlite")
    assert oct(mode(shared)) == "0o755"
    assert oct(mode(shared / "outbox.sqlite")) == "0o600"
