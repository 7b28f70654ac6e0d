"""Settings admins change in the app: how often each kind of node is expected to report, and
after how many intervals without data a node is stale or offline.

They start as the config file's ``[web]`` values; a change is stored in the ``settings`` table
(who, when) and written to the audit log, and wins over the file from then on.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.web.accounts import audit, utcnow
from cloud.web.db.models import Setting
from cloud.web.i18n import N_
from cloud.web.settings import WebSection
from cloud.web.state import WebState
from cloud.web.views.fleet import DEFAULT_INTERVAL_S

KEY = "fleet_states"
KIND_NAMES = {kind: N_(kind) for kind in DEFAULT_INTERVAL_S}


def effective_web(state: WebState, db: Session) -> WebSection:
    """``[web]`` with what admins changed in the app."""
    stored = db.get(Setting, KEY)
    if stored is None:
        return state.config.web
    return state.config.web.model_copy(update=stored.value)


def save_web_settings(
    db: Session, state: WebState, form: dict[str, str], *, actor: str, client: str
) -> list[str]:
    """Check and store the settings form; every problem named, nothing stored if one is wrong."""
    problems: list[str] = []
    update: dict[str, Any] = {}
    intervals: dict[str, float] = {}
    for name, raw in form.items():
        try:
            number = float(raw)
        except ValueError:
            problems.append(f"{name}: {raw!r} is not a number")
            continue
        if name.startswith("interval_"):
            kind = name.removeprefix("interval_")
            if kind not in KIND_NAMES:
                problems.append(f"{name}: no kind {kind!r}")
                continue
            intervals[kind] = number
        elif name in ("stale_after", "offline_after"):
            update[name] = number
        else:
            problems.append(f"{name}: not a setting")
    if intervals:
        update["expected_interval_s"] = intervals
    if problems:
        return problems
    current = effective_web(state, db)
    try:
        WebSection.model_validate({**current.model_dump(), **update})
    except ValidationError as exc:
        return [e["msg"].removeprefix("Value error, ") for e in exc.errors()]
    stored = db.get(Setting, KEY)
    before = dict(stored.value) if stored is not None else {}
    if stored is None:
        db.add(Setting(key=KEY, value=update, changed_by=actor, changed_at=utcnow()))
    else:
        stored.value = {**stored.value, **update}
        stored.changed_by = actor
        stored.changed_at = utcnow()
    db.flush()
    audit(
        db,
        actor=actor,
        action="settings_changed",
        target=KEY,
        client=client,
        before=before,
        after=update,
    )
    return []


def stored_settings(db: Session) -> dict[str, Any]:
    stored = db.scalar(select(Setting).where(Setting.key == KEY))
    return dict(stored.value) if stored is not None else {}
