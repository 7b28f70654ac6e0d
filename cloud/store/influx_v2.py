"""The store of record through InfluxDB's v2 API (1.8+, 2.x, Cloud, 3.x) with ``influxdb-client``.

Writes go to ``/api/v2/write`` (org, bucket, precision=ns, ``Authorization: Token``) through the
client's WriteApi in SYNCHRONOUS mode, with our own line protocol (see
:mod:`cloud.store.lineprotocol`: the client's escaping corrupts a tag value ending in a
backslash). Reads are InfluxQL on the v1-compatibility ``/query`` endpoint, which 1.8, 2.x (with
a DBRP mapping for the bucket) and 3.x answer, so the web app's queries are the same as on v1.

Errors: no connection, a timeout, 429 or 5xx raise :class:`StoreUnavailable`; 400 and 422
raise :class:`PointsRejected` with the server's message; 401/403/404 (credentials, org or
bucket wrong) raise :class:`StoreUnavailable` saying so, since the points themselves are fine.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import structlog
import urllib3
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from cloud.errors import PointsRejected, StoreError, StoreUnavailable
from cloud.store.base import Point
from cloud.store.influx_v1 import MAX_BODY_BYTES, InfluxHttp
from cloud.store.influxql import InfluxQLReader, Series
from cloud.store.lineprotocol import chunks

log = structlog.get_logger(__name__)


def _message(exc: InfluxDBError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, bytes | str) and body:
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        try:
            return str(json.loads(text).get("message", text))
        except (ValueError, AttributeError):
            return text.strip()
    return str(exc.message or exc)


class InfluxV2Store(InfluxQLReader):
    """InfluxDB through the v2 API.

    >>> store = InfluxV2Store("http://influx:8086", token="t", org="city", bucket="machikado")
    >>> store.write_url
    'http://influx:8086/api/v2/write'
    >>> store.close()
    """

    name = "influx_v2"

    def __init__(
        self,
        url: str,
        *,
        token: str,
        org: str,
        bucket: str,
        timeout_s: float = 10.0,
        gzip_body: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self.write_url = f"{self.url}/api/v2/write"
        # No retries in the client: the collector retries with backoff and keeps the points.
        self._client = InfluxDBClient(
            url=self.url,
            token=token,
            org=org,
            timeout=int(timeout_s * 1000),
            enable_gzip=gzip_body,
            retries=False,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._http = InfluxHttp(
            self.url, timeout_s=timeout_s, headers={"Authorization": f"Token {token}"}
        )
        db, _, rp = bucket.partition("/")
        self._query_params = {"db": db, **({"rp": rp} if rp else {})}
        self._lock = threading.Lock()
        super().__init__(self._select, self._select_many)

    def write(self, points: Sequence[Point]) -> None:
        """Store ``points`` durably, in requests of at most :data:`MAX_BODY_BYTES`."""
        if not points:
            return
        bodies = list(chunks(points, MAX_BODY_BYTES))
        with self._lock:
            for body in bodies:
                self._write_body(body)

    def _write_body(self, body: bytes) -> None:
        try:
            # The client's default precision is ns, which is ours (the request test pins it).
            self._write_api.write(bucket=self.bucket, org=self.org, record=body)
        except InfluxDBError as exc:
            raise self._error(exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnavailable(f"influxdb at {self.url} unreachable: {exc}") from exc

    def _error(self, exc: InfluxDBError) -> StoreError:
        status = getattr(exc, "status", None) or getattr(exc.response, "status", None)
        message = _message(exc)
        log.warning("influx_write_failed", status=status, error=message, url=self.url)
        if status in (400, 422):
            return PointsRejected([m for m in message.split("\n") if m.strip()] or [message])
        if status in (401, 403):
            return StoreUnavailable(f"influxdb at {self.url} refused the token: {message}")
        if status == 404:
            return StoreUnavailable(
                f"influxdb at {self.url}: org {self.org!r} or bucket {self.bucket!r} not found:"
                f" {message}"
            )
        return StoreUnavailable(f"influxdb at {self.url} write answered {status}: {message}")

    def ping(self) -> str:
        return self._http.version()

    def close(self) -> None:
        self._write_api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]
        self._http.close()

    def _select(self, q: str) -> list[Series]:
        return self._select_many([q])[0]

    def _select_many(self, statements: list[str]) -> list[list[Series]]:
        """Each statement's series, all sent in one request."""
        if not statements:
            return []
        results = self._http.query(";\n".join(statements), self._query_params)
        return [results[i] if i < len(results) else [] for i in range(len(statements))]

    def query(self, q: str) -> list[Series]:
        """Run one InfluxQL statement against the bucket (for tools and tests)."""
        return self._select(q)
