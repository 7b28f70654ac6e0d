"""The real InfluxDB (Debian's 1.6.7), started for a test on free ports, with v1 HTTP helpers.

The helpers use urllib from the standard library: they are for tests to set up and check the
store, not the cloud's own client.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Protocol

from tests.services.errors import ServiceError
from tests.services.ports import free_port
from tests.services.process import ServiceProcess, find_binary

#: Seconds one HTTP request to the test server may take.
_HTTP_TIMEOUT_S = 30.0


class InfluxServer(ServiceProcess):
    """An InfluxDB 1.x server on ``127.0.0.1:<port>`` with its data and log in ``tmp_dir``.

    For example (it needs the real service, so it is not run as a doctest)::

        with InfluxServer(tmp_dir) as influx:
            influx.query("CREATE DATABASE telemetry")
            influx.write("telemetry", "visit,node=rr-01 duration_s=182.5 1700000000000000000")
            influx.query("SELECT * FROM visit", db="telemetry")["results"][0]["series"]
    """

    name = "influxd"
    start_timeout_s = 30.0

    def __init__(self, tmp_dir: Path, *, port: int | None = None) -> None:
        super().__init__(tmp_dir, port=port)
        self._binary = find_binary("influxd", "influxdb")
        #: The cluster RPC port (8088 by default, which would clash between servers).
        self.rpc_port = free_port(self.host)
        #: What the server's ``/ping`` reports in ``X-Influxdb-Version``, once started.
        self.version = ""
        self.conf_path = self.tmp_dir / "influxdb.conf"

    @property
    def log_path(self) -> Path:
        # influxd 1.x logs to stderr only; the child's output file is its log.
        return self.output_path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _pick_new_ports(self) -> None:
        super()._pick_new_ports()
        self.rpc_port = free_port(self.host)

    def _write_config(self) -> list[str]:
        d = self.tmp_dir
        self.conf_path.write_text(
            f"""# One test store, written by tests/services/influxdb.py.
reporting-disabled = true
bind-address = "{self.host}:{self.rpc_port}"

[meta]
  dir = "{d / "meta"}"

[data]
  dir = "{d / "data"}"
  wal-dir = "{d / "wal"}"
  query-log-enabled = false

[monitor]
  # No _internal database: less work on a shared machine, and SHOW DATABASES stays ours.
  store-enabled = false

[http]
  bind-address = "{self.host}:{self.port}"
  auth-enabled = false
  log-enabled = true

[continuous_queries]
  enabled = false

[logging]
  suppress-logo = true
""",
            encoding="utf-8",
        )
        return [self._binary, "run", "-config", str(self.conf_path)]

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=2.0) as resp:
                if resp.status != 204:
                    return False
                self.version = resp.headers.get("X-Influxdb-Version", "")
                return True
        except OSError:
            return False

    def query(self, q: str, db: str | None = None, *, epoch: str | None = None) -> dict[str, Any]:
        """Run InfluxQL through ``/query``; raise :class:`ServiceError` on any statement's error.

        ``epoch`` ("ns", "u", "ms", "s") returns times as integers instead of RFC 3339 strings.
        """
        form = {"q": q}
        if db is not None:
            form["db"] = db
        if epoch is not None:
            form["epoch"] = epoch
        body = self._request("/query", urllib.parse.urlencode(form).encode(), form_encoded=True)
        result: dict[str, Any] = json.loads(body)
        errors = [result["error"]] if "error" in result else []
        errors += [r["error"] for r in result.get("results", []) if "error" in r]
        if errors:
            raise ServiceError(f"influxd query {q!r}: {'; '.join(errors)}")
        return result

    def write(self, db: str, line_protocol: str, *, precision: str = "ns") -> None:
        """Write line protocol through ``/write``; raise :class:`ServiceError` if refused."""
        params = urllib.parse.urlencode({"db": db, "precision": precision})
        self._request(f"/write?{params}", line_protocol.encode(), form_encoded=False)

    def _request(self, path: str, data: bytes, *, form_encoded: bool) -> bytes:
        content_type = "application/x-www-form-urlencoded" if form_encoded else "text/plain"
        req = urllib.request.Request(
            f"{self.url}{path}", data=data, method="POST", headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(req, timeout=_HTTP_TIMEOUT_S) as resp:
                body: bytes = resp.read()
                return body
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read().decode(errors="replace").strip()
            raise ServiceError(f"influxd {path}: HTTP {exc.code}: {detail}") from None
        except OSError as exc:
            raise ServiceError(f"influxd {path}: cannot reach {self.url}: {exc}") from None


class InfluxFactory(Protocol):
    """Makes and starts another store; the ``influxdb_factory`` fixture stops them all."""

    def __call__(self, *, port: int | None = None) -> InfluxServer: ...
