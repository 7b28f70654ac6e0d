"""Accounts, login sessions and API tokens: who may see what, for how long.

- Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended
  option); a hash made with older parameters is replaced at the next login.
- A login session is a random token in an ``HttpOnly`` cookie; the database keeps only its
  SHA-256, so a stolen database copy logs nobody in. Sessions end after ``session_hours``, after
  ``idle_minutes`` without a request, at logout, or when an admin revokes them.
- An account is locked for ``lockout_minutes`` after ``max_failed_logins`` wrong passwords in a
  row; one client address may try ``login_per_minute`` times a minute, whatever the account
  (:class:`LoginThrottle`).
- API tokens are random, shown once when made, stored as SHA-256, revocable.

Every login, logout, lockout and account change is written to the audit log
(:func:`audit`).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud.errors import CloudError
from cloud.web.db.models import ROLES, ApiToken, AuditEvent, LoginSession, User
from cloud.web.settings import WebSection
from protocol.limits import NODE_ID

_hasher = PasswordHasher()
#: Verifying against this makes an unknown user cost as much as a known one.
_DUMMY_HASH = _hasher.hash("not a password of anyone")
MIN_PASSWORD = 12
USERNAME = NODE_ID  # lower case, digits and '-': safe in logs, URLs and the audit log

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class AccountError(CloudError):
    """An account that cannot be made or changed as asked; the message says why."""


def token_hash(token: str) -> str:
    """The SHA-256 of a session id or API token, as the database keeps it."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_rules(username: str, password: str) -> None:
    """Refuse a password that is too short or contains the username."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if username.lower() in password.lower():
        raise AccountError("a password may not contain the username")


def create_user(
    db: Session,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    actor: str,
    client: str = "",
    now: datetime | None = None,
) -> User:
    """Add an account; the username must be new and the password follow the rules."""
    if not USERNAME.fullmatch(username):
        raise AccountError(f"username {username!r} must match {USERNAME.pattern}")
    if role not in ROLES:
        raise AccountError(f"role {role!r} must be one of {', '.join(ROLES)}")
    check_password_rules(username, password)
    if db.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(f"user {username!r} exists already")
    at = now or utcnow()
    user = User(
        username=username,
        display_name=display_name,
        role=role,
        password_hash=_hasher.hash(password),
        created_at=at,
    )
    db.add(user)
    db.flush()
    audit(db, actor=actor, action="user_created", target=username, client=client, role=role)
    return user


def set_password(db: Session, user: User, password: str, *, actor: str, client: str = "") -> None:
    """Change a password; every session of the user ends (a new password locks out a thief)."""
    check_password_rules(user.username, password)
    user.password_hash = _hasher.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    revoke_sessions(db, user, actor=actor, client=client)
    audit(db, actor=actor, action="password_changed", target=user.username, client=client)


@dataclass(frozen=True, slots=True)
class LoginResult:
    """What a login attempt came to: ``user`` when it succeeded, else ``reason``."""

    user: User | None
    reason: str = ""  # "bad_credentials", "locked", "disabled"


def authenticate(
    db: Session,
    username: str,
    password: str,
    *,
    settings: WebSection,
    client: str,
    now: datetime | None = None,
) -> LoginResult:
    """Check a username and password; count failures and lock the account after too many.

    The answer a browser sees does not say whether the user exists; the audit log does.
    """
    at = now or utcnow()
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password)
        audit(db, actor=username[:64], action="login_failed", client=client, reason="no_user")
        return LoginResult(None, "bad_credentials")
    if user.disabled:
        audit(db, actor=user.username, action="login_failed", client=client, reason="disabled")
        return LoginResult(None, "disabled")
    if user.locked_until is not None and user.locked_until > at:
        audit(db, actor=user.username, action="login_failed", client=client, reason="locked")
        return LoginResult(None, "locked")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        user.failed_logins += 1
        reason = "bad_password"
        if user.failed_logins >= settings.max_failed_logins:
            user.locked_until = at + timedelta(minutes=settings.lockout_minutes)
            user.failed_logins = 0
            reason = "locked_now"
        audit(db, actor=user.username, action="login_failed", client=client, reason=reason)
        return LoginResult(None, "locked" if reason == "locked_now" else "bad_credentials")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = at
    audit(db, actor=user.username, action="login", client=client)
    return LoginResult(user)


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just made: the cookie value (only here, never stored) and its CSRF token."""

    token: str
    csrf_token: str
    expires_at: datetime


def start_session(
    db: Session, user: User, *, settings: WebSection, client: str, now: datetime | None = None
) -> NewSession:
    """A new login session for ``user``."""
    at = now or utcnow()
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = at + timedelta(hours=settings.session_hours)
    db.add(
        LoginSession(
            token_hash=token_hash(token),
            csrf_token=csrf,
            user_id=user.id,
            created_at=at,
            last_seen_at=at,
            expires_at=expires,
            client=client[:64],
        )
    )
    db.flush()
    return NewSession(token, csrf, expires)


def find_session(
    db: Session, token: str, *, settings: WebSection, now: datetime | None = None
) -> LoginSession | None:
    """The live session of a cookie value, touched; None if unknown, ended or idle too long."""
    at = now or utcnow()
    found = db.scalar(select(LoginSession).where(LoginSession.token_hash == token_hash(token)))
    if found is None or found.revoked_at is not None or found.expires_at <= at:
        return None
    if found.last_seen_at + timedelta(minutes=settings.idle_minutes) <= at:
        found.revoked_at = at
        return None
    if found.user.disabled:
        return None
    # Written at most once a minute: a page's parallel requests need not each write.
    if at - found.last_seen_at > timedelta(minutes=1):
        found.last_seen_at = at
    return found


def end_session(db: Session, session: LoginSession, *, client: str) -> None:
    """Log out: the session can no longer be used, even with a copied cookie."""
    session.revoked_at = utcnow()
    audit(db, actor=session.user.username, action="logout", client=client)


def revoke_sessions(db: Session, user: User, *, actor: str, client: str = "") -> int:
    """End every live session of ``user``; how many there were."""
    result = db.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        audit(
            db, actor=actor, action="sessions_revoked", target=user.username, client=client, n=count
        )
    return count


def create_api_token(db: Session, *, name: str, actor: str, client: str = "") -> str:
    """A new API token named ``name``; the token itself is returned once and never stored."""
    if not USERNAME.fullmatch(name):
        raise AccountError(f"token name {name!r} must match {USERNAME.pattern}")
    if db.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise AccountError(f"an API token named {name!r} exists already")
    token = "mk_" + secrets.token_urlsafe(32)
    db.add(ApiToken(name=name, token_hash=token_hash(token), created_by=actor, created_at=utcnow()))
    audit(db, actor=actor, action="api_token_created", target=name, client=client)
    return token


def find_api_token(db: Session, token: str) -> ApiToken | None:
    """The live API token of a bearer value, or None."""
    found = db.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if found is None or found.revoked_at is not None:
        return None
    at = utcnow()
    if found.last_used_at is None or at - found.last_used_at > timedelta(minutes=1):
        found.last_used_at = at
    return found


def revoke_api_token(db: Session, name: str, *, actor: str, client: str = "") -> None:
    found = db.scalar(select(ApiToken).where(ApiToken.name == name))
    if found is None or found.revoked_at is not None:
        raise AccountError(f"no live API token named {name!r}")
    found.revoked_at = utcnow()
    audit(db, actor=actor, action="api_token_revoked", target=name, client=client)


def audit(
    db: Session, *, actor: str, action: str, target: str = "", client: str = "", **detail: Any
) -> None:
    """Add one line to the audit log (committed with the change it records)."""
    db.add(
        AuditEvent(
            at=utcnow(),
            actor=actor[:64],
            action=action,
            target=target[:256],
            client=client[:64],
            detail=detail,
        )
    )


class LoginThrottle:
    """At most ``per_minute`` login attempts per client address in any minute (in memory).

    >>> t = [0.0]
    >>> throttle = LoginThrottle(2, clock=lambda: t[0])
    >>> throttle.allow("10.0.0.1"), throttle.allow("10.0.0.1"), throttle.allow("10.0.0.1")
    (True, True, False)
    >>> t[0] = 61.0; throttle.allow("10.0.0.1")
    True
    """

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        now = self._clock()
        with self._lock:
            if len(self._seen) > 10_000:  # forget quiet clients rather than grow without end
                self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - 60}
            window = self._seen.setdefault(client, deque())
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= self.per_minute:
                return False
            window.append(now)
            return True
