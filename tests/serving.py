"""Test servers on loopback: one way to run an ``http.server`` in a thread for the length of a block."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer


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
