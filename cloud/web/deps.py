"""Dependencies of the routers: the shared state, a database session, who is asking, and the
checks a route needs (a login, a role, a CSRF token). Pages and the API share them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from cloud.web.accounts import find_api_token, find_session
from cloud.web.db.models import ApiToken, LoginSession, User
from cloud.web.i18n import Formats, current_language
from cloud.web.security import PRE_CSRF_COOKIE, same_token, session_cookie_name
from cloud.web.state import WebState


def get_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


StateDep = Annotated[WebState, Depends(get_state)]


def get_db(state: StateDep) -> Iterator[Session]:
    with state.db.session() as session:
        yield session


#: Committed when the handler returns, before the answer is sent ("function" scope): the
#: browser's next request sees what this one changed.
DbDep = Annotated[Session, Depends(get_db, scope="function")]


def client_of(request: Request) -> str:
    """The client's address as the app sees it (behind a proxy: the proxy's, unless uvicorn
    is told to trust its forwarded headers)."""
    return request.client.host if request.client else ""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking, in which language; ``user`` None before login."""

    user: User | None
    session: LoginSession | None
    language: str
    formats: Formats
    csrf: str

    @property
    def role(self) -> str:
        return self.user.role if self.user else ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class LoginRequired(Exception):
    """Raised by a page dependency when nobody is logged in: the app redirects to /login."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def get_viewer(request: Request, state: StateDep, db: DbDep) -> Viewer:
    secure = state.config.web.cookies_secure
    token = request.cookies.get(session_cookie_name(secure))
    session = (
        find_session(db, token, settings=state.config.web, now=state.clock()) if token else None
    )
    language = current_language.get()
    csrf = session.csrf_token if session else request.cookies.get(PRE_CSRF_COOKIE, "")
    return Viewer(
        user=session.user if session else None,
        session=session,
        language=language,
        formats=Formats(language, state.config.web.timezone),
        csrf=csrf,
    )


ViewerDep = Annotated[Viewer, Depends(get_viewer)]


def require_user(request: Request, viewer: ViewerDep) -> Viewer:
    if viewer.user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(quote(target, safe="/?=&"))
    return viewer


UserDep = Annotated[Viewer, Depends(require_user)]


def require_admin(viewer: UserDep) -> Viewer:
    if not viewer.is_admin:
        raise HTTPException(status_code=403, detail="admins only")
    return viewer


AdminDep = Annotated[Viewer, Depends(require_admin)]


async def check_csrf(request: Request, viewer: ViewerDep) -> None:
    """Refuse a form whose ``csrf`` field does not match the session's (or pre-login) token."""
    form: Any = await request.form()
    given = form.get("csrf")
    if not same_token(given if isinstance(given, str) else None, viewer.csrf or None):
        raise HTTPException(status_code=403, detail="the form's CSRF token is missing or wrong")


CsrfDep = Depends(check_csrf)


def require_api_token(request: Request, db: DbDep) -> ApiToken:
    """An API client's bearer token, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    found = find_api_token(db, value.strip()) if scheme.lower() == "bearer" and value else None
    if found is None:
        raise HTTPException(
            status_code=401,
            detail="a valid API token is needed: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


ApiDep = Annotated[ApiToken, Depends(require_api_token)]
