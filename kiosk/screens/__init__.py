"""The kiosk's screens: one ``.kv`` file per screen, each with a thin Python class.

Importing this package first sets Kivy's environment, because Kivy reads it once at import:
our command line is typer's, not Kivy's (``KIVY_NO_ARGS``); logs go through Python logging
and structlog, not Kivy's own files (``KIVY_LOG_MODE=PYTHON``, ``KIVY_NO_FILELOG``); and no
``config.ini`` is read or written (``KIVY_NO_CONFIG``): the node's TOML is the only config.
A value already in the environment wins.
"""

from __future__ import annotations

import os

for _key, _value in {
    "KIVY_NO_ARGS": "1",
    "KIVY_LOG_MODE": "PYTHON",
    "KIVY_NO_FILELOG": "1",
    "KIVY_NO_CONFIG": "1",
}.items():
    os.environ.setdefault(_key, _value)
