"""Admin pages: accounts, API tokens, the audit log. Admins only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from cloud.web.db.models import ApiToken, AuditEvent, User
from cloud.web.deps import AdminDep, DbDep
from cloud.web.render import render

router = APIRouter(prefix="/admin", include_in_schema=False)


@router.get("")
def admin_page(request: Request, viewer: AdminDep, db: DbDep) -> Response:
    users = db.scalars(select(User).order_by(User.username)).all()
    tokens = db.scalars(select(ApiToken).order_by(ApiToken.name)).all()
    events = db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(100)).all()
    return render(request, "admin.html", viewer=viewer, users=users, tokens=tokens, events=events)
