"""Logging in and out, and choosing the language."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from cloud.web.accounts import authenticate, end_session, start_session
from cloud.web.deps import CsrfDep, DbDep, StateDep, ViewerDep, client_of
from cloud.web.i18n import LANGUAGES
from cloud.web.render import render
from cloud.web.security import LANG_COOKIE, PRE_CSRF_COOKIE, new_token, session_cookie_name

log = structlog.get_logger(__name__)
router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this site only (never ``//evil`` or a URL).

    >>> safe_next("/nodes/rr-01"), safe_next("//evil.example/"), safe_next("https://x/")
    ('/nodes/rr-01', '/', '/')
    """
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


@router.get("/login")
def login_page(request: Request, viewer: ViewerDep, state: StateDep, next: str = "/") -> Response:
    if viewer.user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    response = _login_form(request, viewer, state, next=next, error=None)
    return response


def _login_form(
    request: Request, viewer: ViewerDep, state: StateDep, *, next: str, error: str | None
) -> Response:
    token = viewer.csrf or new_token()
    response = render(
        request,
        "login.html",
        viewer=viewer.__class__(
            user=None, session=None, language=viewer.language, formats=viewer.formats, csrf=token
        ),
        next=safe_next(next),
        error=error,
        status=401 if error else 200,
    )
    if not viewer.csrf:
        response.set_cookie(
            PRE_CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=state.config.web.cookies_secure,
        )
    return response


@router.post("/login", dependencies=[CsrfDep])
def login(
    request: Request,
    viewer: ViewerDep,
    state: StateDep,
    db: DbDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=512)] = "/",
) -> Response:
    client = client_of(request)
    if not state.throttle.allow(client):
        log.warning("web_login_throttled", client=client)
        return _login_form(request, viewer, state, next=next, error="throttled")
    result = authenticate(
        db, username.strip(), password, settings=state.config.web, client=client, now=state.clock()
    )
    if result.user is None:
        log.info("web_login_refused", reason=result.reason, client=client)
        return _login_form(request, viewer, state, next=next, error=result.reason)
    session = start_session(
        db, result.user, settings=state.config.web, client=client, now=state.clock()
    )
    log.info("web_login", user=result.user.username, client=client)
    response = RedirectResponse(safe_next(next), status_code=303)
    secure = state.config.web.cookies_secure
    response.set_cookie(
        session_cookie_name(secure),
        session.token,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
        max_age=int(state.config.web.session_hours * 3600),
    )
    response.delete_cookie(PRE_CSRF_COOKIE)
    if result.user.language in LANGUAGES:
        response.set_cookie(LANG_COOKIE, result.user.language, samesite="lax", secure=secure)
    return response


@router.post("/logout", dependencies=[CsrfDep])
def logout(request: Request, viewer: ViewerDep, state: StateDep, db: DbDep) -> Response:
    if viewer.session is not None:
        end_session(db, viewer.session, client=client_of(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(session_cookie_name(state.config.web.cookies_secure), path="/")
    return response


@router.post("/language", dependencies=[CsrfDep])
def choose_language(
    state: StateDep,
    viewer: ViewerDep,
    db: DbDep,
    language: Annotated[str, Form(max_length=8)],
    next: Annotated[str, Form(max_length=512)] = "/",
) -> Response:
    response = RedirectResponse(safe_next(next), status_code=303)
    if language in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            language,
            samesite="lax",
            secure=state.config.web.cookies_secure,
            max_age=365 * 86400,
        )
        if viewer.user is not None:
            viewer.user.language = language
    return response
