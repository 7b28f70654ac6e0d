"""The real Mosquitto broker (Debian's 2.0.11), started for a test on a free port.

Started as root, mosquitto drops privileges to the user ``mosquitto`` before it opens its log,
password file, ACL file and persistence file, so those are made over to that user here and the
temp dir must be one it can reach (the fixtures in ``tests/conftest.py`` make such dirs).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from tests.services.errors import ServiceError
from tests.services.process import ServiceProcess, find_binary

#: The user Debian's mosquitto switches to when started as root.
BROKER_USER = "mosquitto"
#: The default (1000) silently drops QoS 1 messages queued for a slow or offline persistent
#: subscriber; a collector catching up after an outage must get them all.
MAX_QUEUED_MESSAGES = 1_000_000
#: QoS 1 messages in flight to one client before the rest wait in its queue.
MAX_INFLIGHT_MESSAGES = 100
#: How long one readiness probe waits for a CONNACK.
_PROBE_S = 2.0


class MosquittoServer(ServiceProcess):
    """A Mosquitto broker on ``127.0.0.1:<port>``, its config, log and persistence in ``tmp_dir``.

    Anonymous unless ``users`` (name -> password) are given; ``acl_file`` is copied in and used.

    For example (it needs the real service, so it is not run as a doctest)::

        with MosquittoServer(tmp_dir, users={"rr-01": "secret"}) as broker:
            paho_client.username_pw_set("rr-01", "secret")
            paho_client.connect(broker.host, broker.port)
            broker.restart()  # same port, queued messages kept
    """

    name = "mosquitto"
    #: The CA that clients verify the broker with, when a subclass serves TLS; None: plain MQTT.
    tls_ca: Path | None = None

    def __init__(
        self,
        tmp_dir: Path,
        *,
        port: int | None = None,
        users: Mapping[str, str] | None = None,
        acl_file: Path | None = None,
        extra_conf: str = "",
    ) -> None:
        super().__init__(tmp_dir, port=port)
        self.users: dict[str, str] = dict(users or {})
        self.extra_conf = extra_conf
        self._binary = find_binary("mosquitto", "mosquitto")
        self._owner = _broker_owner()
        if self._owner is not None:
            _check_reachable(self.tmp_dir, self._owner)
        self.conf_path = self.tmp_dir / "mosquitto.conf"
        self.persistence_dir = self.tmp_dir / "persistence"
        self.persistence_dir.mkdir(exist_ok=True)
        self.log_path.touch()
        self._give(self.persistence_dir, 0o700)
        self._give(self.log_path, 0o600)
        self.password_file: Path | None = None
        if self.users:
            self.password_file = self._write_password_file(self.users)
        self.acl_file: Path | None = None
        if acl_file is not None:
            if not Path(acl_file).is_file():
                raise ServiceError(f"mosquitto acl_file {acl_file}: no such file")
            self.acl_file = self.tmp_dir / "acl"
            shutil.copyfile(acl_file, self.acl_file)
            self._give(self.acl_file, 0o600)

    @property
    def log_path(self) -> Path:
        return self.tmp_dir / "mosquitto.log"

    def _write_config(self) -> list[str]:
        lines = [
            "# One test broker, written by tests/services/mosquitto.py.",
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'false' if self.users else 'true'}",
        ]
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        lines += [
            "persistence true",
            # The trailing slash matters: mosquitto appends the file name to it.
            f"persistence_location {self.persistence_dir}/",
            f"max_queued_messages {MAX_QUEUED_MESSAGES}",
            f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
            f"log_dest file {self.log_path}",
            "log_type all",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
            self.extra_conf,
        ]
        self.conf_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return [self._binary, "-c", str(self.conf_path)]

    def _answers(self) -> bool:
        """Whether an MQTT CONNECT gets a CONNACK (any reason code: the broker answered)."""
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"machikado-probe-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
        )
        if self.users:
            username, password = next(iter(self.users.items()))
            client.username_pw_set(username, password)
        if self.tls_ca is not None:
            client.tls_set(ca_certs=str(self.tls_ca))
        answered: list[bool] = []

        def on_connect(*_: Any) -> None:
            answered.append(True)

        client.on_connect = on_connect
        try:
            client.connect(self.host, self.port, keepalive=10)
        except OSError:
            return False
        try:
            deadline = time.monotonic() + _PROBE_S
            while not answered and time.monotonic() < deadline:
                if client.loop(timeout=0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
        finally:
            client.disconnect()
            # A refused or lost connection leaves paho's socket open; close it here.
            sock = client.socket()
            if sock is not None:
                sock.close()
        return bool(answered)

    def _write_password_file(self, users: Mapping[str, str]) -> Path:
        for name, password in users.items():
            if not name or any(c in name for c in ":\n\r"):
                raise ServiceError(f"mosquitto user {name!r}: must be non-empty, without : or \\n")
            if any(c in password for c in "\n\r"):
                raise ServiceError(f"mosquitto user {name!r}: the password holds a line break")
        path = self.tmp_dir / "passwd"
        path.write_text("".join(f"{n}:{p}\n" for n, p in users.items()), encoding="utf-8")
        tool = find_binary("mosquitto_passwd", "mosquitto")
        done = subprocess.run([tool, "-U", str(path)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ServiceError(
                f"mosquitto_passwd -U {path} failed with code {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()}"
            )
        self._give(path, 0o600)
        return path

    def _give(self, path: Path, mode: int) -> None:
        """Make a file or dir the broker's own, so it can still use it after dropping privileges."""
        if self._owner is not None:
            os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        path.chmod(mode)


class MosquittoFactory(Protocol):
    """Makes and starts another broker; the ``mosquitto_factory`` fixture stops them all."""

    def __call__(
        self,
        *,
        port: int | None = None,
        users: Mapping[str, str] | None = None,
        acl_file: Path | None = None,
        extra_conf: str = "",
    ) -> MosquittoServer: ...


def _broker_owner() -> pwd.struct_passwd | None:
    """The user mosquitto will run as when it drops privileges, or None when it keeps ours."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(BROKER_USER)
    except KeyError:
        return None


def _check_reachable(path: Path, user: pwd.struct_passwd) -> None:
    """Raise when ``user`` cannot traverse every directory down to ``path``."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for directory in [path.resolve(), *path.resolve().parents]:
        st = directory.stat()
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            raise ServiceError(
                f"mosquitto runs as user {user.pw_name} and cannot reach {path}: {directory} "
                f"is mode {stat.filemode(st.st_mode)}; use the mosquitto_factory fixture or a "
                "dir it can traverse"
            )
