"""The web app served for real (uvicorn on a free port) and Debian's Chromium driven by
Playwright, for the few tests only a browser can do."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, sync_playwright

from tests.services import free_port

CHROMIUM = "/usr/bin/chromium"
#: What the machine's probe found Chromium needs on a closed network, as root and headless.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"


class Served:
    """An ASGI app served by uvicorn on 127.0.0.1 in a thread, until :meth:`stop`."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError(f"the web app did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless; a missing binary fails with what to install."""
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} not found: install the Debian package chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def axe_violations(
    page: Page, *, tags: tuple[str, ...] = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
) -> list[dict[str, Any]]:
    """What axe-core finds on the page against WCAG 2.1 A and AA."""
    # Evaluated through the DevTools protocol: the app's CSP (rightly) refuses inline scripts.
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    result: dict[str, Any] = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
        list(tags),
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["html"][:160] for n in v["nodes"][:3]],
        }
        for v in result["violations"]
    ]
