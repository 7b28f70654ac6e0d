"""The phone link of a ticket, opened by a real browser (headless Chromium): the one-time code
reaches the page's script, never the server, so no server or proxy log can hold it."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kiosk.consult import Ticket

#: The phone page's part that matters here: it reads the code from the fragment.
PAGE = b"""<!doctype html><html><body><p id="code"></p><script>
document.getElementById("code").textContent =
  "CODE=" + new URLSearchParams(location.hash.slice(1)).get("c");
</script></body></html>"""


class RecordingServer(ThreadingHTTPServer):
    """Serves the phone page for every path and keeps every request as it came in."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: RecordingServer

    def do_GET(self) -> None:
        # The request line and every header, as a server or proxy access log would keep them.
        self.server.seen.append(self.requestline + "\n" + str(self.headers))
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test reads what was requested from self.server.seen


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    httpd = RecordingServer()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_the_one_time_code_reaches_the_phone_page_but_never_the_server(
    server: RecordingServer, tmp_path: Path
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium (Debian package chromium) is needed for this test"
    ticket = Ticket.new(consult_url=f"http://127.0.0.1:{server.server_address[1]}/t/")
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # tests may run as root
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            ticket.qr_payload,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    page_requests = [r for r in server.seen if r.startswith(f"GET /t/{ticket.number}")]
    assert page_requests, (server.seen, done.stderr[-2000:])
    assert [r for r in server.seen if ticket.code in r] == [], "the server saw the code"
    assert f"CODE={ticket.code}" in done.stdout, "the page could not read the code"
