"""A structlog logger that imports structlog only when it first logs.

structlog imports rich for its console renderer, which costs the kiosk a good part of its start
time; modules on the kiosk's way to its first frame log through this instead.

>>> log = LazyLogger("kiosk.example")
>>> callable(log.info)
True
"""

from __future__ import annotations

from typing import Any


class LazyLogger:
    """Stands for ``structlog.get_logger(name)``; the real logger is made on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, method: str) -> Any:
        if self._logger is None:
            import structlog

            from machikado.logs import finish_configure

            finish_configure()  # as the root command was told (machikado.logs.configure_later)
            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, method)
