"""The store of record through InfluxDB's v1 HTTP API: `/write` line protocol, `/query` InfluxQL.

Every InfluxDB from 1.x on answers it, including the 1.6.7 that Debian and Raspberry Pi OS ship.
A write returns when influxd has the points in its WAL (fsync'd by default), so a returned
``write`` is durable. Idempotency is InfluxDB's own: a point with the same measurement, tag set
and time replaces the fields it names.

Errors: no connection, a timeout or a 5xx raise :class:`StoreUnavailable` (keep the points and
retry). A 400 raises :class:`PointsRejected` with influxd's reasons. On a ``partial write``
influxd has stored every other point of the batch, so the caller should isolate the bad ones by
writing the batch again message by message (the good ones are overwritten with themselves).
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator, Sequence
from urllib.parse import urlencode

import structlog
import urllib3

from cloud.errors import PointsRejected, StoreError, StoreUnavailable
from cloud.store.base import Point
from cloud.store.influxql import InfluxQLReader, Series, parse_results, quote_ident
from cloud.store.lineprotocol import chunks

log = structlog.get_logger(__name__)

#: Bytes of line protocol per request; influxd's default max-body-size is 25 MB.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Rows per chunk when influxd streams a large query result.
QUERY_CHUNK_ROWS = 10_000


class InfluxHttp:
    """A pool of HTTP connections to one InfluxDB server, mapping failures to store errors.

    >>> InfluxHttp("http://127.0.0.1:8086", timeout_s=5).base_url
    'http://127.0.0.1:8086'
    """

    def __init__(
        self, url: str, *, timeout_s: float, headers: dict[str, str] | None = None
    ) -> None:
        self.base_url = url.rstrip("/")
        self._headers = dict(headers or {})
        # No retries here: the collector retries with backoff and keeps the points meanwhile.
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=4,
            retries=False,
            timeout=urllib3.Timeout(total=timeout_s),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        preload: bool = True,
    ) -> urllib3.BaseHTTPResponse:
        url = f"{self.base_url}{path}"
        if params:
            url += "?" + urlencode(params)
        try:
            return self._pool.request(
                method,
                url,
                body=body,
                headers={**self._headers, **(headers or {})},
                preload_content=preload,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnavailable(f"influxdb at {self.base_url} unreachable: {exc}") from exc

    def version(self) -> str:
        """What ``/ping`` reports in ``X-Influxdb-Version`` ("" when it says nothing)."""
        resp = self.request("GET", "/ping")
        if resp.status >= 300:
            raise StoreUnavailable(f"influxdb at {self.base_url} /ping answered {resp.status}")
        return str(resp.headers.get("X-Influxdb-Version", ""))

    def query(self, q: str, params: dict[str, str]) -> list[list[Series]]:
        """Run InfluxQL through ``/query`` (chunked, times in ns) and return each statement's."""
        form = {"q": q, "epoch": "ns", "chunked": "true", "chunk_size": str(QUERY_CHUNK_ROWS)}
        resp = self.request(
            "POST",
            "/query",
            body=urlencode({**params, **form}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        text = resp.data.decode("utf-8", errors="replace")
        if resp.status >= 500:
            raise StoreUnavailable(f"influxdb /query answered {resp.status}: {text.strip()}")
        if resp.status in (401, 403):
            raise StoreUnavailable(f"influxdb refused the credentials ({resp.status}): {text}")
        try:
            # Chunks are separated by "\n" only: str.splitlines() would also split inside a
            # string at U+0085 or U+2028, which JSON leaves unescaped.
            docs = [json.loads(line) for line in text.split("\n") if line.strip()]
        except ValueError as exc:
            raise StoreError(f"influxdb /query answered {resp.status}, not JSON: {text!r}") from exc
        if resp.status >= 300 and not docs:
            raise StoreError(f"influxdb /query answered {resp.status}: {text.strip()}")
        return parse_results(docs)

    def close(self) -> None:
        self._pool.clear()


def write_error(status: int, text: str, base_url: str) -> StoreError:
    """The store error for a ``/write`` answer that is not 2xx."""
    try:
        message = str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        message = text.strip()
    if status == 400:
        return PointsRejected([r for r in message.split("\n") if r.strip()] or [message])
    if status in (401, 403):
        return StoreUnavailable(f"influxdb at {base_url} refused the credentials: {message}")
    return StoreUnavailable(f"influxdb at {base_url} /write answered {status}: {message}")


class InfluxV1Store(InfluxQLReader):
    """InfluxDB through the v1 API; creates its database when missing. With a server running::

        store = InfluxV1Store("http://127.0.0.1:8086", database="machikado")
        store.write([Point("visit", {"node": "rr-01"}, {"duration_s": 3.5}, 1)])
        store.count("visit", by="node")  # {'rr-01': 1}

    >>> InfluxV1Store("http://127.0.0.1:8086").name
    'influx_v1'
    """

    name = "influx_v1"

    def __init__(
        self,
        url: str,
        *,
        database: str = "machikado",
        retention_policy: str = "",
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        gzip_body: bool = False,
    ) -> None:
        headers = {}
        if username is not None:
            headers.update(urllib3.make_headers(basic_auth=f"{username}:{password or ''}"))
        self._http = InfluxHttp(url, timeout_s=timeout_s, headers=headers)
        self.database = database
        self.retention_policy = retention_policy
        self._gzip = gzip_body
        self._db_ready = False
        self._lock = threading.Lock()
        super().__init__(self._select, self._select_many)

    @property
    def url(self) -> str:
        return self._http.base_url

    def _ensure_database(self) -> None:
        if self._db_ready:
            return
        # CREATE DATABASE is idempotent; it leaves an existing database as it is.
        q = f"CREATE DATABASE {quote_ident(self.database)}"
        resp = self._http.request(
            "POST",
            "/query",
            body=urlencode({"q": q}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        text = resp.data.decode("utf-8", errors="replace").strip()
        if resp.status == 403:
            # A user without admin rights cannot create databases; an admin made it already,
            # or the write will say that it is missing.
            log.warning("influx_database_not_created", database=self.database, error=text)
        elif resp.status >= 300 or '"error"' in text:
            raise StoreUnavailable(
                f"influxdb at {self.url} could not create database {self.database!r}:"
                f" {resp.status} {text}"
            )
        else:
            log.info("influx_database_ready", database=self.database, url=self.url)
        self._db_ready = True

    def write(self, points: Sequence[Point]) -> None:
        """Store ``points`` durably, in requests of at most :data:`MAX_BODY_BYTES`."""
        if not points:
            return
        bodies = list(chunks(points, MAX_BODY_BYTES))
        params = self._params()
        with self._lock:
            self._ensure_database()
            for body in bodies:
                self._write_body(body, params)

    def write_lines(self, bodies: Sequence[bytes]) -> None:
        """Store line protocol encoded by the caller (each body whole lines, as
        :func:`~cloud.store.lineprotocol.encode_points` makes them): like :meth:`write`."""
        params = self._params()
        with self._lock:
            self._ensure_database()
            for body in _joined(bodies, MAX_BODY_BYTES):
                self._write_body(body, params)

    def _params(self) -> dict[str, str]:
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        return params

    def _write_body(self, body: bytes, params: dict[str, str]) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        for attempt in (1, 2):
            resp = self._http.request("POST", "/write", params=params, body=body, headers=headers)
            if resp.status == 204:
                return
            text = resp.data.decode("utf-8", errors="replace")
            if resp.status == 404 and "database not found" in text and attempt == 1:
                # Dropped or wiped since we created it: create it again, once.
                self._db_ready = False
                self._ensure_database()
                continue
            error = write_error(resp.status, text, self.url)
            log.warning("influx_write_failed", status=resp.status, error=str(error), url=self.url)
            raise error

    def ping(self) -> str:
        return self._http.version()

    def close(self) -> None:
        self._http.close()

    def _select(self, q: str) -> list[Series]:
        return self._select_many([q])[0]

    def _select_many(self, statements: list[str]) -> list[list[Series]]:
        """Each statement's series, all sent in one request."""
        if not statements:
            return []
        params = {"db": self.database}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        try:
            results = self._http.query(";\n".join(statements), params)
        except StoreError as exc:
            # Nothing written yet: the database is created by the first write.
            if "database not found" in str(exc):
                return [[] for _ in statements]
            raise
        return [results[i] if i < len(results) else [] for i in range(len(statements))]

    def query(self, q: str) -> list[Series]:
        """Run one InfluxQL statement against this store's database (for tools and tests)."""
        return self._select(q)


def _joined(bodies: Sequence[bytes], max_bytes: int) -> Iterator[bytes]:
    """``bodies`` joined into requests of at most ``max_bytes`` (a larger body goes alone)."""
    group: list[bytes] = []
    size = 0
    for body in bodies:
        if group and size + len(body) > max_bytes:
            yield b"".join(group)
            group, size = [], 0
        if body:
            group.append(body)
            size += len(body)
    if group:
        yield b"".join(group)
