"""A recording HTTP server for tests: keeps every request and answers with canned responses.

It stands in for an InfluxDB 2.x server, which does not install here: a test checks what the
client sent (method, path, query, headers, body) and how it handles each answer.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it; ``body`` is un-gzipped when it came gzipped."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw_body: bytes
    body: bytes

    def param(self, name: str) -> str:
        """The single value of query parameter ``name``."""
        (value,) = self.query[name]
        return value


@dataclass(frozen=True)
class Canned:
    """A response to give: status, headers, body."""

    status: int = 204
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class RecordingHTTPServer:
    """An HTTP server on ``127.0.0.1:<free port>`` in a thread.

    ``answer(path, *canned)`` queues responses for a path; the last one queued repeats. Paths
    with nothing queued get 204.

    >>> import urllib.request, urllib.error
    >>> with RecordingHTTPServer() as server:
    ...     server.answer("/api/v2/write", Canned(503, b'{"message":"down"}'))
    ...     try:
    ...         urllib.request.urlopen(f"{server.url}/api/v2/write?org=city", data=b"m v=1")
    ...     except urllib.error.HTTPError as exc:
    ...         exc.close()
    ...         print(exc.code)
    ...     print(server.requests[0].param("org"), server.requests[0].body)
    503
    city b'm v=1'
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._answers: dict[str, list[Canned]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, path: str, *canned: Canned) -> None:
        with self._lock:
            self._answers[path] = list(canned)

    def _next(self, path: str) -> Canned:
        with self._lock:
            queue = self._answers.get(path)
            if not queue:
                return Canned()
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def of(self, path: str) -> Iterator[Recorded]:
        """The recorded requests to ``path``, in order."""
        with self._lock:
            found = [r for r in self.requests if r.path == path]
        yield from found

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = raw
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(raw)
                parts = urlsplit(self.path)
                server._record(
                    Recorded(
                        method=self.command,
                        path=parts.path,
                        query=parse_qs(parts.query, keep_blank_values=True),
                        headers={k.lower(): v for k, v in self.headers.items()},
                        raw_body=raw,
                        body=body,
                    )
                )
                canned = server._next(parts.path)
                self.send_response(canned.status)
                for name, value in canned.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                self.wfile.write(canned.body)

            do_GET = do_POST = do_HEAD = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass  # the test reads server.requests instead

        return Handler

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
