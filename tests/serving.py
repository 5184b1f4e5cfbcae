"""Test servers on loopback: one way to run an ``http.server`` in a thread for the length of a block."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

EXAMPLE_SITE = Path(__file__).resolve().parent.parent / "examples" / "site"


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    """``server`` answering in a daemon thread of this process until the block ends; yields its base URL
    (``http://127.0.0.1:PORT``, no trailing slash). Requests are served in daemon threads too."""
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class HtmlHandler(BaseHTTPRequestHandler):
    """A test site's handler: quiet (pytest's output stays clean), and ``_send`` for a whole HTML answer."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving_examples() -> Iterator[str]:
    """examples/site/ served as ``make demo`` serves it, for the length of a block; yields its base URL."""
    handler = functools.partial(_QuietFiles, directory=str(EXAMPLE_SITE))
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as base:
        yield base
