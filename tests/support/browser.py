"""Real Chromium for end-to-end tests: Debian's browser driven by Playwright's Python API
(never ``playwright install``), against the app served by werkzeug in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright
from werkzeug.serving import make_server

from spatial.settings import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Let the dispatch console beep without a click first (a person clicks anyway).
    "--autoplay-policy=no-user-gesture-required",
]


@contextmanager
def serve(app) -> Iterator[str]:
    """Serve ``app`` on a free port of 127.0.0.1; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium; fails with the fix when the browser or map assets are missing."""
    assert Path(CHROMIUM).exists(), "Chromium is missing: apt-get install chromium (make setup)"
    vendor = PROJECT_ROOT / "webmap/static/vendor/leaflet/leaflet.js"
    assert vendor.exists(), "map assets are missing: run 'make setup'"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def watch_problems(page) -> list[str]:
    """Collect page errors and console errors (a CSP violation logs one)."""
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    return problems
