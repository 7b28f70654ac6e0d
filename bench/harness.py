"""What the broker benchmarks share: a dir Mosquitto can reach, quiet logs, a node config.

The real services and node processes come from ``tests.services`` and
``tests.integration.nodes``, so a benchmark starts them exactly as the integration tests do.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog

#: Told what a benchmark is doing now ("starting Mosquitto"); the runner shows it.
Report = Callable[[str], None]


def ignore(_stage: str) -> None:
    """A :data:`Report` that shows nothing."""


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Warnings only from this process while measuring, unless logging is configured already.

    Unconfigured structlog prints every debug line to stdout, which would both cost time and
    scroll the progress display away.
    """
    quiet = not structlog.is_configured()
    if quiet:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield
    finally:
        if quiet:
            structlog.reset_defaults()


@contextlib.contextmanager
def service_dir(prefix: str) -> Iterator[Path]:
    """A temporary dir that Mosquitto, dropping root to its own user, can still enter."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_node_config(
    directory: Path,
    *,
    node: str,
    port: int,
    synthetic_rate: float,
    synthetic_count: int = 0,
    mqtt: str = "",
    sections: str = "",
) -> Path:
    """A kiosk-kind node config whose load is synthetic readings; other keys keep defaults.

    ``mqtt`` holds extra ``key = value`` lines of the ``[mqtt]`` section, ``sections`` whole
    further sections such as ``[health]``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{node}.toml"
    path.write_text(
        f"""
[node]
id = "{node}"
kind = "kiosk"
data_dir = "{directory / "data"}"

[mqtt]
host = "127.0.0.1"
port = {port}
{mqtt}

[simulation]
synthetic_rate = {synthetic_rate}
synthetic_count = {synthetic_count}

{sections}
""",
        encoding="utf-8",
    )
    return path
