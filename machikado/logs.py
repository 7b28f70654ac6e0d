"""Structured logging set-up shared by every command.

Log lines are key=value (or JSON for machines) and name what happened to whom: ``node``,
``stream``, ``seq``. Call :func:`configure` once at start; modules use
``structlog.get_logger(__name__)``.

structlog loads rich for its console renderer, which costs a part that must start fast (the
kiosk, before its first frame) more than it can spare. Such a part is started with
:func:`configure_later`: the standard library's logging is set up at once, structlog only when
the part calls :func:`finish_configure` (the kiosk does once its window is up, and when it
first logs).

Tracebacks are printed without the values of local variables, in both renderers: a frame of the
consultation path holds a resident's answers or a doctor's reply, and those must never reach a
log (structlog's and rich's defaults show locals).
"""

from __future__ import annotations

import logging
import sys

#: The arguments of the last :func:`configure` or :func:`configure_later`, for a child process
#: to log the same way and for :func:`finish_configure`.
_configured: dict[str, str | bool] = {}
_pending = False


def configure(*, level: str = "info", json: bool = False) -> None:
    """Set up structlog and the stdlib root logger (paho and others log through it)."""
    global _pending
    _configure_stdlib(level)
    _configured.update(level=level, json=json)
    _pending = False
    _configure_structlog(level, json)


def configure_later(*, level: str = "info", json: bool = False) -> None:
    """The stdlib root logger now; structlog once :func:`finish_configure` is called."""
    global _pending
    _configure_stdlib(level)
    _configured.update(level=level, json=json)
    _pending = True


def finish_configure() -> None:
    """Set up structlog as :func:`configure_later` was told, if it was and nothing since."""
    global _pending
    if _pending:
        _pending = False
        _configure_structlog(str(_configured["level"]), bool(_configured["json"]))


def configure_like_parent(settings: dict[str, str | bool]) -> None:
    """In a child process: log as the parent does (``settings`` from :func:`current`)."""
    configure(level=str(settings.get("level", "info")), json=bool(settings.get("json", False)))


def current() -> dict[str, str | bool]:
    """How logging was last configured in this process (empty if it was not)."""
    return dict(_configured)


def _level(level: str) -> int:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    return numeric


def _configure_stdlib(level: str) -> None:
    logging.basicConfig(level=_level(level), stream=sys.stderr, format="%(message)s")


def _configure_structlog(level: str, json: bool) -> None:
    import structlog
    from structlog.tracebacks import ExceptionDictTransformer

    tail: list[structlog.types.Processor] = (
        [
            # Frames as a list of file, line and function: no locals.
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            structlog.processors.JSONRenderer(),
        ]
        if json
        else [
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            )
        ]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *tail,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
