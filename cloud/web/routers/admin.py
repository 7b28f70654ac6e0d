"""Admin pages: accounts, API tokens and settings (admins), the audit log (admins, auditors).

Every change here is written to the audit log with who made it and from where.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from cloud.web.accounts import (
    AccountError,
    audit,
    create_api_token,
    create_user,
    revoke_api_token,
    revoke_sessions,
    set_password,
)
from cloud.web.db.models import ROLES, ApiToken, AuditEvent, User
from cloud.web.deps import AdminDep, CsrfDep, DbDep, StateDep, UserDep, Viewer, client_of
from cloud.web.exports import Column, Table
from cloud.web.i18n import gettext_ as _
from cloud.web.render import render
from cloud.web.routers.common import check_format, exported
from cloud.web.settings_store import KIND_NAMES, effective_web, save_web_settings

router = APIRouter(prefix="/admin", include_in_schema=False)
AUDIT_PAGE = 100


def require_auditor(viewer: UserDep) -> Viewer:
    if viewer.role not in ("admin", "auditor"):
        raise HTTPException(status_code=403, detail="admins and auditors only")
    return viewer


AuditorDep = Annotated[Viewer, Depends(require_auditor)]


def _page(request: Request, viewer: Viewer, db: DbDep, state: StateDep, **extra: Any) -> Response:
    users = db.scalars(select(User).order_by(User.username)).all()
    tokens = db.scalars(select(ApiToken).order_by(ApiToken.name)).all()
    return render(
        request,
        "admin.html",
        viewer=viewer,
        users=users,
        tokens=tokens,
        roles=ROLES,
        web=effective_web(state, db),
        kinds=KIND_NAMES,
        status=extra.pop("status", 200),
        **extra,
    )


@router.get("")
def admin_page(request: Request, viewer: AdminDep, db: DbDep, state: StateDep) -> Response:
    return _page(request, viewer, db, state)


def _user(db: DbDep, username: str) -> User:
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise HTTPException(404, f"no user {username!r}")
    return user


@router.post("/users", dependencies=[CsrfDep])
def add_user(
    request: Request,
    viewer: AdminDep,
    db: DbDep,
    state: StateDep,
    username: Annotated[str, Form(max_length=64)],
    role: Annotated[str, Form(max_length=16)],
    password: Annotated[str, Form(max_length=1024)],
    display_name: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    assert viewer.user is not None
    try:
        create_user(
            db,
            username=username.strip(),
            password=password,
            role=role,
            display_name=display_name.strip(),
            actor=viewer.user.username,
            client=client_of(request),
        )
    except AccountError as exc:
        return _page(request, viewer, db, state, error=str(exc), status=422)
    return RedirectResponse("/admin#accounts", status_code=303)


@router.post("/users/{username}", dependencies=[CsrfDep])
def change_user(
    request: Request,
    username: str,
    viewer: AdminDep,
    db: DbDep,
    state: StateDep,
    action: Annotated[str, Form(max_length=32)],
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """disable, enable, unlock, revoke (every session), password (set a new one)."""
    assert viewer.user is not None
    actor, client = viewer.user.username, client_of(request)
    user = _user(db, username)
    if user.id == viewer.user.id and action == "disable":
        return _page(
            request, viewer, db, state, error=_("You cannot disable yourself."), status=422
        )
    try:
        if action == "disable":
            user.disabled = True
            revoke_sessions(db, user, actor=actor, client=client)
        elif action == "enable":
            user.disabled = False
        elif action == "unlock":
            user.locked_until = None
            user.failed_logins = 0
        elif action == "revoke":
            revoke_sessions(db, user, actor=actor, client=client)
        elif action == "password":
            set_password(db, user, password, actor=actor, client=client)
        else:
            raise HTTPException(422, f"unknown action {action!r}")
    except AccountError as exc:
        return _page(request, viewer, db, state, error=str(exc), status=422)
    done = {"disable": "user_disabled", "enable": "user_enabled", "unlock": "user_unlocked"}
    if action in done:
        audit(db, actor=actor, action=done[action], target=username, client=client)
    return RedirectResponse("/admin#accounts", status_code=303)


@router.post("/tokens", dependencies=[CsrfDep])
def add_token(
    request: Request,
    viewer: AdminDep,
    db: DbDep,
    state: StateDep,
    name: Annotated[str, Form(max_length=64)],
) -> Response:
    assert viewer.user is not None
    try:
        token = create_api_token(
            db, name=name.strip(), actor=viewer.user.username, client=client_of(request)
        )
    except AccountError as exc:
        return _page(request, viewer, db, state, error=str(exc), status=422)
    # Shown this once, on a page that is never cached; only its hash is kept.
    return _page(request, viewer, db, state, new_token=(name.strip(), token))


@router.post("/tokens/{name}/revoke", dependencies=[CsrfDep])
def remove_token(
    request: Request, name: str, viewer: AdminDep, db: DbDep, state: StateDep
) -> Response:
    assert viewer.user is not None
    try:
        revoke_api_token(db, name, actor=viewer.user.username, client=client_of(request))
    except AccountError as exc:
        return _page(request, viewer, db, state, error=str(exc), status=422)
    return RedirectResponse("/admin#tokens", status_code=303)


@router.post("/settings", dependencies=[CsrfDep])
async def change_settings(
    request: Request, viewer: AdminDep, db: DbDep, state: StateDep
) -> Response:
    assert viewer.user is not None
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if k != "csrf"}
    problems = save_web_settings(
        db, state, values, actor=viewer.user.username, client=client_of(request)
    )
    if problems:
        return _page(request, viewer, db, state, error="; ".join(problems), status=422)
    return RedirectResponse("/admin#settings", status_code=303)


def _events(db: DbDep, before: int | None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(AUDIT_PAGE)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    return list(db.scalars(query))


@router.get("/audit")
def audit_page(
    request: Request, viewer: AuditorDep, db: DbDep, before: int | None = None
) -> Response:
    events = _events(db, before)
    total = db.scalar(select(func.count()).select_from(AuditEvent)) or 0
    return render(
        request,
        "audit.html",
        viewer=viewer,
        events=events,
        total=total,
        older=events[-1].id if len(events) == AUDIT_PAGE else None,
    )


@router.get("/audit.{fmt}")
def audit_export(
    request: Request, fmt: str, viewer: AuditorDep, db: DbDep, before: int | None = None
) -> Response:
    events = _events(db, before)
    table = Table(
        [
            Column("at", _("When")),
            Column("actor", _("Who")),
            Column("action", _("What")),
            Column("target", _("Target")),
            Column("client", _("From")),
        ],
        [
            {
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "client": e.client,
            }
            for e in events
        ],
    )
    return exported(
        request, viewer, db, table, fmt=check_format(fmt), filename="audit", target=f"audit.{fmt}"
    )
