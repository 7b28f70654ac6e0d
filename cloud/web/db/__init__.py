"""The web app's database: engine, sessions, and schema migrations through Alembic.

:class:`Database` opens the URL of ``[database]`` (SQLite by default, PostgreSQL for a
deployment), brings the schema up to date with :meth:`Database.upgrade` and hands out
SQLAlchemy sessions. The schema is only ever changed by migrations in ``migrations/versions``.

>>> db = Database("sqlite://")
>>> db.upgrade()
>>> db.revision() == HEAD
True
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from cloud.errors import ConfigError, StoreUnavailable

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The newest migration; a database at another revision is upgraded at start.
HEAD = "0001"


def _sqlite_file(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def _prepare_sqlite_file(path: Path) -> None:
    """Create the database file 0600 (its dir 0700 when made here) before SQLite opens it."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    """One database URL, with its engine and session factory."""

    def __init__(self, url: str, *, password: str | None = None) -> None:
        try:
            parsed = make_url(url)
        except Exception as exc:  # SQLAlchemy raises ArgumentError with the URL's text
            raise ConfigError(f"database.url is not a database URL: {type(exc).__name__}") from None
        if password is not None and parsed.password is None:
            parsed = parsed.set(password=password)
        self.backend = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"future": True}
        if self.backend == "sqlite":
            path = _sqlite_file(url)
            if path is None:
                # One shared in-memory database for every session (tests, doctests).
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                _prepare_sqlite_file(path)
                kwargs.update(connect_args={"check_same_thread": False})
        else:
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
        self.engine: Engine = create_engine(parsed, **kwargs)
        if self.backend == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _alembic(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return cfg

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (a fresh database gets every table)."""
        from alembic import command

        cfg = self._alembic()
        try:
            with self.engine.begin() as connection:
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            first = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
            raise StoreUnavailable(
                f"web database ({self.backend}) cannot be migrated: {first}"
            ) from None

    def revision(self) -> str | None:
        """The migration the database is at (None before the first)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            rev: str | None = MigrationContext.configure(connection).get_current_revision()
            return rev

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends normally, else rolls back. A handler
        may commit earlier itself (before it answers, so the next request sees the change)."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
