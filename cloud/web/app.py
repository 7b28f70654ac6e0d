"""The web app for city staff: :func:`create_app` builds the FastAPI application.

Server-rendered pages (Jinja2) that work without JavaScript; htmx (vendored under
``static/vendor``) only refreshes the fleet table. One router per area; every page that shows a
table serves it as CSV and JSON at the same address with another extension.

Run it with ``machikado cloud web --config PATH`` (:mod:`cloud.web.cli`).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from cloud.errors import CloudError, StoreError, StoreUnavailable
from cloud.store import ReadableStore
from cloud.web.accounts import utcnow
from cloud.web.db import Database
from cloud.web.deps import LoginRequired
from cloud.web.i18n import current_language, pick_language
from cloud.web.render import render_error
from cloud.web.security import LANG_COOKIE, SecurityHeaders
from cloud.web.settings import WebConfig
from cloud.web.state import STATIC, WebState
from machikado.settings import read_secret

log = structlog.get_logger(__name__)

#: How often the app looks for days to roll up (a day is rolled up once it has ended).
ROLLUP_EVERY_S = 300.0


class LanguageMiddleware:
    """Sets the language of each request (cookie, then ``Accept-Language``, then the
    configured default) before anything renders."""

    def __init__(self, app: ASGIApp, default: str) -> None:
        self.app = app
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        language = pick_language(
            user=None,
            cookie=request.cookies.get(LANG_COOKIE),
            accept=request.headers.get("accept-language"),
            default=self.default,
        )
        token = current_language.set(language)
        try:
            await self.app(scope, receive, send)
        finally:
            current_language.reset(token)


def create_app(
    config: WebConfig,
    *,
    db: Database | None = None,
    store: ReadableStore | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """The app for ``config``; tests may hand in a database, a store and a clock."""
    from cloud.web.routers import admin, api, auth, pages

    database = db or Database(config.database.url, password=_db_password(config))
    state = WebState(
        config=config, db=database, clock=clock, store=store, store_given=store is not None
    )
    state.throttle.per_minute = config.web.login_per_minute
    state.load_fleet()
    database.upgrade()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        worker = threading.Thread(
            target=_rollups, args=(state, stop), name="web-rollups", daemon=True
        )
        if config.web.rollups:
            worker.start()
        try:
            yield
        finally:
            stop.set()
            if worker.is_alive():
                worker.join(30)

    app = FastAPI(
        lifespan=lifespan,
        title="machikado",
        version="1",
        docs_url=None,  # Swagger UI loads from a CDN; the OpenAPI document is enough
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.web = state
    app.add_middleware(SecurityHeaders)
    app.add_middleware(LanguageMiddleware, default=config.web.language)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(admin.router)
    app.include_router(api.router)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={exc.next_path}", status_code=303)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> Response:
        # Down (503: try again) or refusing what it was asked (502: our query, not the input,
        # since every input is checked before it reaches the store).
        status = 503 if isinstance(exc, StoreUnavailable) else 502
        log.warning("web_store_failed", path=request.url.path, status=status, error=str(exc))
        if status == 503:
            state.forget_store()
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": f"the store failed: {exc}"}, status_code=status)
        return render_error(request, status, "store_unavailable", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        return render_error(request, exc.status_code, "http", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10]]
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": problems}, status_code=422)
        return render_error(request, 422, "invalid", "; ".join(problems))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        return {"ok": True, "database": database.revision()}

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return HTMLResponse(status_code=204)

    return app


def _rollups(state: WebState, stop: threading.Event) -> None:
    """Keep the daily rollups made while the app runs: at start, then every few minutes."""
    while not stop.is_set():
        try:
            made = state.rollup_all(progress=lambda what: log.info("web_rollups", doing=what))
            if made:
                log.info("web_rollups_made", days=made)
        except CloudError as exc:
            log.warning("web_rollups_failed", error=str(exc))
            state.forget_store()
        stop.wait(ROLLUP_EVERY_S)


def _db_password(config: WebConfig) -> str | None:
    path = config.database.password_file
    if path is None:
        return None
    return read_secret(path, key="database.password_file").get_secret_value()
