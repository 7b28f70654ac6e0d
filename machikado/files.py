"""Files that hold what others must not read: made mode 0600, in directories made mode 0700.

The outbox, the dead-letter store and the embedded store are SQLite files. SQLite creates a
database's ``-wal`` and ``-shm`` files with the database file's own mode, so creating the
database file 0600 before SQLite opens it keeps all three private, whatever the umask.
Existing files and directories are left as they are: an operator may have chosen otherwise.

>>> import tempfile
>>> base = Path(tempfile.mkdtemp())
>>> path = base / "a" / "b" / "outbox.sqlite"
>>> make_private_dirs(path.parent); create_private_file(path)
>>> oct(path.stat().st_mode & 0o777), oct(path.parent.stat().st_mode & 0o777)
('0o600', '0o700')
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: The mode of a file we create: its owner reads and writes it, nobody else.
FILE_MODE = 0o600
#: The mode of a directory we create: its owner only.
DIR_MODE = 0o700


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each mode 0700; existing ones stay as they are."""
    missing: list[Path] = []
    here = Path(path)
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            directory.mkdir(mode=DIR_MODE)
            # mkdir's mode passes through the umask, which may only take bits away; chmod
            # makes it exact for a umask that would take the owner's own.
            directory.chmod(DIR_MODE)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (then it is left as it is)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)
