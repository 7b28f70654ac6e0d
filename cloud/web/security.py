"""The browser-facing defences: security headers, the session cookie, CSRF tokens.

- Every answer carries a strict Content-Security-Policy (scripts and styles from this origin
  only, no inline script, no framing), ``nosniff``, ``Referrer-Policy: same-origin`` and, for
  pages behind a login, ``Cache-Control: no-store``.
- The session cookie is ``HttpOnly``, ``SameSite=Lax`` and, unless the app listens on loopback
  only, ``Secure`` with the ``__Host-`` prefix (no Domain, Path ``/``).
- Every form carries a CSRF token: the session's own once logged in, else (the login form) a
  random value also set as a cookie, compared in constant time. A POST without a matching
  token is refused with 403 before any handler runs.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
#: The pre-login CSRF cookie (double submit for the login and language forms).
PRE_CSRF_COOKIE = "machikado_csrf"
LANG_COOKIE = "machikado_lang"


def session_cookie_name(secure: bool) -> str:
    """``__Host-machikado`` when cookies are Secure (browsers then refuse any Domain)."""
    return "__Host-machikado" if secure else "machikado_session"


def same_token(given: str | None, expected: str | None) -> bool:
    """Whether two tokens match, in constant time; a missing one never matches.

    >>> same_token("abc", "abc"), same_token("abc", None), same_token("", "")
    (True, False, False)
    """
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def new_token() -> str:
    return secrets.token_urlsafe(32)


class SecurityHeaders(BaseHTTPMiddleware):
    """Adds the security headers to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        headers = response.headers
        path = request.url.path
        if path.endswith(".svg"):
            # Charts are images (<img>): no script, their own inline styles, nothing fetched.
            headers.setdefault(
                "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"
            )
        else:
            headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if not path.startswith("/static/"):
            headers.setdefault("Cache-Control", "no-store")
        return response
