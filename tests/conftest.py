"""Shared fixtures: a test site on 127.0.0.1, a scratch log/db/artifacts folder, the CLI as a user runs it.

The site (``site`` fixture) is served by a standard-library threading HTTP server in this pytest
process; the runner under test (a subprocess) reaches it over 127.0.0.1 only. Its pages:

- ``/login``: a form (``#user``, ``#pass``, ``#go``) that submits to ``/signin``;
- ``/signin?user=U``: sets the cookie ``session=U`` (one hour) and redirects to ``/whoami``;
- ``/whoami``: ``#who`` shows the session cookie's user, or ``nobody``;
- ``/feed``: a long page to scroll with a ``#more`` button; title "Feed";
- ``/slow?ms=N``: answers after N milliseconds;
- ``/flaky?key=K``: HTTP 500 the first time a key is asked for, a page afterwards;
- ``/broken``: HTTP 500 always;
- ``/echo?...``: ``#q`` shows the query string, decoded (so a page can "leak" what it was given).
"""

from __future__ import annotations

import html
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote_plus, urlsplit

import orjson
import pytest
from playwright.sync_api import Browser, sync_playwright
from serving import HtmlHandler

from warmup.browser import find_browser, launch_args

REPO = Path(__file__).resolve().parent.parent

# The tests Ctrl-C the processes they start (`warmup run`, `tail -f`, `project -f`). A shell that
# runs a command in the background without job control (`cmd &` in a script, as a CI runner may)
# starts it with SIGINT ignored, and every child inherits that: Python then installs no
# KeyboardInterrupt and those tests would wait for ever. A handler, unlike SIG_IGN, is reset to the
# default by exec, so with this every process a test starts gets SIGINT as a user's terminal gives it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _page(title: str, body: str) -> bytes:
    head = f"<meta charset='utf-8'><title>{title}</title>"
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>".encode()


LOGIN = _page(
    "Sign in",
    "<form action='/signin' method='get'><input id='user' name='user'><input id='pass' name='pass' type='password'>"
    "<button id='go' type='submit'>Sign in</button></form>",
)
FEED = _page(
    "Feed",
    "<main id='feed'>"
    + "".join(f"<article><h2>Post {i}</h2><p>{'Lorem ipsum. ' * 30}</p></article>" for i in range(40))
    + "</main><button id='more' onclick=\"document.title='Feed (more)'\">More</button>",
)


class _Handler(HtmlHandler):
    server: _SiteServer

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.server.hits.append((url.path, time.monotonic()))
        if url.path == "/login":
            self._send(200, LOGIN)
        elif url.path == "/signin":
            user = query.get("user", [""])[0]
            self._send(302, b"", {"Location": "/whoami", "Set-Cookie": f"session={user}; Max-Age=3600; Path=/"})
        elif url.path == "/whoami":
            cookies = dict(
                part.strip().split("=", 1) for part in self.headers.get("Cookie", "").split(";") if "=" in part
            )
            who = html.escape(cookies.get("session", "nobody"))
            self._send(200, _page("Who am I", f"<p id='who'>{who}</p>"))
        elif url.path == "/feed":
            self._send(200, FEED)
        elif url.path == "/slow":
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
            self._send(200, _page("Slow", "<p id='done'>done</p>"))
        elif url.path == "/flaky":
            key = query.get("key", [""])[0]
            with self.server.lock:
                first = key not in self.server.flaky_seen
                self.server.flaky_seen.add(key)
            if first:
                self._send(500, _page("Oops", "<p>try again</p>"))
            else:
                self._send(200, _page("Flaky", "<p id='ok'>ok</p>"))
        elif url.path == "/broken":
            self._send(500, _page("Broken", "<p>broken on purpose</p>"))
        elif url.path == "/echo":
            shown = html.escape(unquote_plus(url.query))
            self._send(200, _page("Echo", f"<p id='q'>{shown}</p>"))
        elif url.path == "/favicon.ico":
            self._send(404, b"")
        else:
            self._send(404, _page("Not found", "<p>not found</p>"))


class _SiteServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: list[tuple[str, float]] = []
        self.flaky_seen: set[str] = set()
        self.lock = threading.Lock()


@pytest.fixture(scope="session")
def site() -> Iterator[str]:
    """The test site's base URL, e.g. ``http://127.0.0.1:43121``."""
    server = _SiteServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for a module's tests that drive pages themselves (reports, the dashboard)."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=find_browser(headless=True), args=launch_args())
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Workdir:
    """A scratch folder with the paths a run uses."""

    root: Path

    @property
    def log(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def db(self) -> Path:
        return self.root / "warmup.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def task(self, text: str, name: str = "task.toml") -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    def events(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [orjson.loads(line) for line in self.log.read_bytes().splitlines()]

    def run_args(self, task: Path, *extra: str) -> list[str]:
        return ["run", str(task), "--log", str(self.log), "--db", str(self.db), "--artifacts", str(self.artifacts),
                *extra]


@pytest.fixture
def work(tmp_path: Path) -> Workdir:
    return Workdir(tmp_path)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: this one, minus anything that would redirect warmup."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMUP_")}
    env.update(extra)
    return env


def warmup(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user does: ``python -m cli ...`` from the repository, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env=env if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def projector_available() -> bool:
    return (REPO / "warmup" / "projector" / "command.py").exists()


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` (we are root on the test machine); skipped where mounting is not allowed."""
    where.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                          capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
