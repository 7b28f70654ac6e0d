"""What every request of the web app shares, made once at start: config, database, store,
manifest, templates, the login throttle and the clock."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cloud.errors import CloudError, ConfigError
from cloud.fleet import Fleet, load_fleet
from cloud.rollup import RollupJob
from cloud.store import ReadableStore, open_store
from cloud.web.accounts import LoginThrottle, utcnow
from cloud.web.db import Database
from cloud.web.i18n import gettext_, ngettext_
from cloud.web.settings import WebConfig

log = structlog.get_logger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"


def templates_env() -> Environment:
    """Jinja2 with autoescaping everywhere and gettext bound to the request's language."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(gettext_, ngettext_, newstyle=True)  # type: ignore[attr-defined]
    # Words that come from data (a kind, a unit, a figure's title) are translated with ``tr``:
    # newstyle gettext formats its result with %, which a unit such as "%" cannot pass.
    env.globals["tr"] = gettext_
    return env


@dataclass
class WebState:
    """The app's shared parts. The store is opened on first use and again after a failure,
    so a store that was down at start is used once it is back."""

    config: WebConfig
    db: Database
    clock: Callable[[], datetime] = utcnow
    store: ReadableStore | None = None
    fleet: Fleet = field(default_factory=Fleet)
    #: Why the manifest could not be read, shown on every page that needs it.
    fleet_error: str | None = None
    templates: Environment = field(default_factory=templates_env)
    throttle: LoginThrottle = field(default_factory=lambda: LoginThrottle(10))
    #: A store handed in (tests, the demo) is kept after a failure; one opened here is reopened.
    store_given: bool = False
    _store_lock: threading.Lock = field(default_factory=threading.Lock)

    def load_fleet(self) -> None:
        try:
            self.fleet = load_fleet(self.config.fleet.manifest)
            self.fleet_error = None
        except ConfigError as exc:
            self.fleet, self.fleet_error = Fleet(), str(exc)
            log.error("web_fleet_manifest_unusable", error=str(exc))

    def read_side(self) -> ReadableStore:
        """The store of record; a :class:`~cloud.errors.StoreUnavailable` while it is down."""
        with self._store_lock:
            if self.store is None:
                self.store = open_store(self.config.store)
            return self.store

    def rollup_job(self) -> RollupJob:
        store = self.read_side()
        return RollupJob(store, store.write, ZoneInfo(self.config.web.timezone), clock=self.clock)

    def rollup_all(self, progress: Callable[[str], None] | None = None) -> int:
        """Make every missing daily rollup up to yesterday; how many days were made."""
        return self.rollup_job().run(progress=progress)

    def forget_store(self) -> None:
        """Drop the store after a failure: the next request opens it again."""
        if self.store_given:
            return
        with self._store_lock:
            store, self.store = self.store, None
        if store is not None:
            with contextlib.suppress(CloudError):
                store.close()
