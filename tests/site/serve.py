"""Serve a built site on 127.0.0.1 and drive Debian's chromium with Playwright.

Shared by the browser tests and scripts/screenshots.py. Never downloads a browser:
`CHROMIUM` (default /usr/bin/chromium) must exist.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import os
import threading
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# As root chromium needs --no-sandbox; the rest keep it from calling home on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# What a static host (GitHub Pages) sends compressed.
_COMPRESSED = (".html", ".css", ".js", ".json", ".svg", ".xml", ".txt")


class _GzipHandler(_QuietHandler):
    """Text files gzip-encoded when the client accepts it, as a static host serves them:
    page-weight measurements then see what a reader downloads."""

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if not (path.suffix in _COMPRESSED and path.is_file() and "gzip" in self.headers.get("Accept-Encoding", "")):
            return super().send_head()
        body = gzip.compress(path.read_bytes(), compresslevel=6)
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)


@contextmanager
def serve_site(site: Path, compress: bool = False):
    """Yield the base URL of `site` served on a free port of 127.0.0.1 (gzip-encoded if `compress`)."""
    handler = functools.partial(_GzipHandler if compress else _QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def launch():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def browser_context(browser, width: int, height: int, reduced_motion: bool = False):
    return browser.new_context(
        viewport={"width": width, "height": height},
        reduced_motion="reduce" if reduced_motion else "no-preference",
        device_scale_factor=1,
    )
