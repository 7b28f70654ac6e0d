"""Fixtures every test folder can use: a real Mosquitto broker and a real InfluxDB store.

Each is started fresh for the test on free ports, with its files in a dir of its own, and stopped
afterwards. A missing binary or a service that does not come up fails the test with the
service's own log tail; nothing here skips.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.services import (
    InfluxFactory,
    InfluxServer,
    MosquittoFactory,
    MosquittoServer,
    ServiceError,
)
from tests.services.process import ServiceProcess


@pytest.fixture(scope="session")
def services_dir() -> Iterator[Path]:
    """A dir for service files that the broker's own user can traverse.

    pytest's ``tmp_path`` lives under a mode-0700 dir, which mosquitto (started as root, then
    running as user ``mosquitto``) cannot enter.
    """
    base = Path(tempfile.mkdtemp(prefix="machikado-services-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _service_dir(base: Path, request: pytest.FixtureRequest, service: str) -> Path:
    test = re.sub(r"[^A-Za-z0-9_-]+", "_", request.node.name)[:60]
    path = Path(tempfile.mkdtemp(prefix=f"{test}-{service}-", dir=base))
    path.chmod(0o711)
    return path


def _stop_all(servers: list[ServiceProcess]) -> None:
    problems: list[str] = []
    for server in servers:
        try:
            server.stop()
        except ServiceError as exc:
            problems.append(str(exc))
    if problems:
        raise ServiceError("\n".join(problems))


@pytest.fixture
def mosquitto_factory(
    services_dir: Path, request: pytest.FixtureRequest
) -> Iterator[MosquittoFactory]:
    """Makes and starts brokers (``port=``, ``users=``, ``acl_file=``, ``extra_conf=``)."""
    servers: list[ServiceProcess] = []

    def make(
        *,
        port: int | None = None,
        users: Mapping[str, str] | None = None,
        acl_file: Path | None = None,
        extra_conf: str = "",
    ) -> MosquittoServer:
        server = MosquittoServer(
            _service_dir(services_dir, request, "mosquitto"),
            port=port,
            users=users,
            acl_file=acl_file,
            extra_conf=extra_conf,
        )
        servers.append(server)
        server.start()
        return server

    yield make
    _stop_all(servers)


@pytest.fixture
def mosquitto(mosquitto_factory: MosquittoFactory) -> MosquittoServer:
    """A fresh anonymous broker on a free port, with persistence; stopped after the test."""
    return mosquitto_factory()


@pytest.fixture
def influxdb_factory(services_dir: Path, request: pytest.FixtureRequest) -> Iterator[InfluxFactory]:
    """Makes and starts InfluxDB servers; stops them all after the test."""
    servers: list[ServiceProcess] = []

    def make(*, port: int | None = None) -> InfluxServer:
        server = InfluxServer(_service_dir(services_dir, request, "influxd"), port=port)
        servers.append(server)
        server.start()
        return server

    yield make
    _stop_all(servers)


@pytest.fixture
def influxdb(influxdb_factory: InfluxFactory) -> InfluxServer:
    """A fresh InfluxDB 1.x server on a free port, no databases yet; stopped after the test."""
    return influxdb_factory()
