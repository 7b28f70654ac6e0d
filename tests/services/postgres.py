"""The real PostgreSQL (Debian's 15), started for tests on a free port with its data in a temp dir.

initdb makes a cluster whose superuser is ``machikado`` with trust authentication on the
loopback address only; the server runs without fsync (test data need not survive a power cut).
Run as root, both run as the ``postgres`` system user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import uuid
from pathlib import Path

from tests.services.errors import ServiceError
from tests.services.process import ServiceProcess

USER = "machikado"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        initdb = shutil.which("initdb")
        if initdb is None:
            raise ServiceError(
                "PostgreSQL's initdb not found in /usr/lib/postgresql/*/bin or on PATH: install "
                "the Debian package postgresql (sudo apt-get install postgresql)"
            )
        return Path(initdb).parent
    return Path(found[-1]).parent


class PostgresServer(ServiceProcess):
    """A PostgreSQL cluster on ``127.0.0.1:<port>``; :meth:`new_database` gives each test its own.

    For example (it needs the real service, so it is not run as a doctest)::

        with PostgresServer(tmp_dir) as pg:
            url = pg.new_database()   # postgresql+psycopg://machikado@127.0.0.1:port/t_...
    """

    name = "postgres"
    start_timeout_s = 30.0

    def __init__(self, tmp_dir: Path, *, port: int | None = None) -> None:
        super().__init__(tmp_dir, port=port)
        self._bin = _bin_dir()
        self.data_dir = self.tmp_dir / "data"
        self.socket_dir = self.tmp_dir / "socket"
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]

    @property
    def log_path(self) -> Path:
        return self.output_path

    def _own(self, path: Path) -> None:
        path.mkdir(mode=0o700, exist_ok=True)
        if self._as:
            entry = pwd.getpwnam("postgres")
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _write_config(self) -> list[str]:
        if not (self.data_dir / "PG_VERSION").exists():
            self._own(self.data_dir)
            done = subprocess.run(
                [
                    *self._as,
                    str(self._bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    USER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise ServiceError(f"initdb failed ({done.returncode}):\n{done.stderr[-2000:]}")
        self._own(self.socket_dir)
        return [
            *self._as,
            str(self._bin / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@{self.host}:{self.port}/{database}"

    def _answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(
                host=self.host, port=self.port, user=USER, dbname="postgres", connect_timeout=2
            ) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host=self.host, port=self.port, user=USER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
