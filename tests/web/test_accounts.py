"""Accounts, sessions and tokens on the web app's real databases: SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from cloud.web.accounts import (
    AccountError,
    authenticate,
    create_api_token,
    create_user,
    find_api_token,
    find_session,
    revoke_api_token,
    set_password,
    start_session,
)
from cloud.web.db import HEAD, Database
from cloud.web.db.models import AuditEvent, Base, User
from cloud.web.settings import WebSection
from tests.web.conftest import NOW, PASSWORD

MINUTE = timedelta(minutes=1)
SETTINGS = WebSection(max_failed_logins=3, lockout_minutes=15, idle_minutes=30, session_hours=8)


def _user(db: Database, name: str = "tanaka", role: str = "staff") -> None:
    with db.session() as s:
        create_user(s, username=name, password=PASSWORD, role=role, actor="test", now=NOW)


def _actions(db: Database) -> list[tuple[str, str]]:
    with db.session() as s:
        return [(e.actor, e.action) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_the_migrations_make_exactly_the_schema_of_the_models(web_db: Database) -> None:
    assert web_db.revision() == HEAD
    with web_db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == []


def test_a_password_is_stored_as_an_argon2id_hash_and_logs_in(web_db: Database) -> None:
    _user(web_db)
    with web_db.session() as s:
        user = s.scalar(select(User).where(User.username == "tanaka"))
        assert user is not None
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        result = authenticate(s, "tanaka", PASSWORD, settings=SETTINGS, client="10.0.0.9", now=NOW)
    assert result.user is not None
    assert ("tanaka", "login") in _actions(web_db)


def test_wrong_passwords_lock_the_account_even_for_the_right_one(web_db: Database) -> None:
    _user(web_db)
    with web_db.session() as s:
        reasons = [
            authenticate(s, "tanaka", "wrong", settings=SETTINGS, client="c", now=NOW).reason
            for _ in range(3)
        ]
        locked = authenticate(s, "tanaka", PASSWORD, settings=SETTINGS, client="c", now=NOW)
        later = NOW + timedelta(minutes=16)
        after = authenticate(s, "tanaka", PASSWORD, settings=SETTINGS, client="c", now=later)
    assert reasons == ["bad_credentials", "bad_credentials", "locked"]
    assert locked.user is None
    assert locked.reason == "locked"
    assert after.user is not None
    assert _actions(web_db).count(("tanaka", "login_failed")) == 4


def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password(web_db: Database) -> None:
    with web_db.session() as s:
        result = authenticate(s, "nobody", "x", settings=SETTINGS, client="c", now=NOW)
    assert (result.user, result.reason) == (None, "bad_credentials")


def test_a_session_ends_when_idle_when_expired_and_when_the_password_changes(
    web_db: Database,
) -> None:
    _user(web_db)
    with web_db.session() as s:
        user = s.scalars(select(User)).one()
        first = start_session(s, user, settings=SETTINGS, client="c", now=NOW)
        second = start_session(s, user, settings=SETTINGS, client="c", now=NOW)
    with web_db.session() as s:
        # Used every 29 minutes it lives on; idle for 31 it is over.
        for minutes in (20, 49):
            assert find_session(s, first.token, settings=SETTINGS, now=NOW + minutes * MINUTE)
        assert find_session(s, first.token, settings=SETTINGS, now=NOW + 80 * MINUTE) is None
        assert find_session(s, first.token, settings=SETTINGS, now=NOW + 81 * MINUTE) is None
        assert find_session(s, "made-up", settings=SETTINGS, now=NOW) is None
        # However busy, it ends after session_hours.
        short = SETTINGS.model_copy(update={"session_hours": 1.0, "idle_minutes": 120.0})
        third = start_session(s, user, settings=short, client="c", now=NOW)
        assert find_session(s, third.token, settings=short, now=NOW + 59 * MINUTE)
        assert find_session(s, third.token, settings=short, now=NOW + 61 * MINUTE) is None
    with web_db.session() as s:
        user = s.scalars(select(User)).one()
        set_password(s, user, "another long password", actor="tanaka")
    with web_db.session() as s:
        assert find_session(s, second.token, settings=SETTINGS, now=NOW) is None


def test_the_database_keeps_no_session_id_or_token_in_clear(web_db: Database) -> None:
    _user(web_db)
    with web_db.session() as s:
        user = s.scalars(select(User)).one()
        session = start_session(s, user, settings=SETTINGS, client="c", now=NOW)
        token = create_api_token(s, name="partner-1", actor="admin")
    with web_db.engine.connect() as conn:
        dump = repr(
            [
                list(conn.exec_driver_sql(f"SELECT * FROM {t}"))
                for t in ("login_sessions", "api_tokens")
            ]
        )
    assert session.token not in dump
    assert token not in dump
    with web_db.session() as s:
        assert find_api_token(s, token) is not None
        revoke_api_token(s, "partner-1", actor="admin")
    with web_db.session() as s:
        assert find_api_token(s, token) is None


@pytest.mark.parametrize(
    ("username", "password", "role", "why"),
    [
        ("Tanaka", PASSWORD, "staff", "must match"),
        ("tanaka", "short", "staff", "at least 12"),
        ("tanaka", "tanaka-is-my-password", "staff", "may not contain the username"),
        ("tanaka", PASSWORD, "root", "role 'root'"),
    ],
)
def test_bad_accounts_are_refused_with_the_reason(
    web_db: Database, username: str, password: str, role: str, why: str
) -> None:
    with web_db.session() as s, pytest.raises(AccountError, match=why):
        create_user(s, username=username, password=password, role=role, actor="test")


def test_a_username_is_taken_once(web_db: Database) -> None:
    _user(web_db)
    with web_db.session() as s, pytest.raises(AccountError, match="exists already"):
        create_user(s, username="tanaka", password=PASSWORD, role="admin", actor="test")
