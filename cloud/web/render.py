"""Turning a page's data into HTML: one function that gives every template the same context."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from cloud.web.i18n import LANGUAGE_NAMES, LANGUAGES, N_, Formats, current_language, gettext_
from cloud.web.state import WebState


def render(
    request: Request,
    template: str,
    *,
    viewer: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered with the viewer, the language and the app's config."""
    state: WebState = request.app.state.web
    html = state.templates.get_template(template).render(
        request=request,
        viewer=viewer,
        lang=viewer.language,
        fmt=viewer.formats,
        csrf=viewer.csrf,
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        fleet_error=state.fleet_error,
        now=state.clock(),
        path=request.url.path,
        refresh_s=state.config.web.refresh_s,
        trial_names={t.id: t.name for t in state.fleet.trials},
        site_names={x.id: x.name for x in state.fleet.sites},
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=headers)


#: Titles of the error pages, translated at render time.
_ERROR_TITLES = {
    "store_unavailable": N_("The telemetry store cannot be reached"),
    "http": N_("This page cannot be shown"),
    "invalid": N_("The address holds a value that is not valid"),
}


def render_error(request: Request, status: int, kind: str, detail: str) -> HTMLResponse:
    """An error page in the request's language that says what went wrong."""
    state: WebState = request.app.state.web
    language = current_language.get()
    html = state.templates.get_template("error.html").render(
        request=request,
        viewer=None,
        lang=language,
        fmt=Formats(language, state.config.web.timezone),
        csrf="",
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        fleet_error=state.fleet_error,
        now=state.clock(),
        path=request.url.path,
        status=status,
        title=gettext_(_ERROR_TITLES.get(kind, _ERROR_TITLES["http"])),
        kind=kind,
        detail=detail,
    )
    return HTMLResponse(html, status_code=status)
