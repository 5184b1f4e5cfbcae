"""``warmup serve``: check the options, bind the port, start the projector child, serve until a signal.

Order: the options are checked (exit 2 with one line: a non-loopback host without a token, a
missing ``--tasks`` folder, a port in use) before anything starts. Then the socket is bound (so the
URL printed is the real one, ``--port 0`` included), the projector child starts (``warmup project
--follow``, as beside ``warmup run``; it dies with the server), and uvicorn serves the app.

SIGTERM or Ctrl-C: the listening socket closes, every event stream ends at once, the scheduler
stops, then runs in flight get ``--grace`` seconds to finish before they are interrupted (SIGINT,
exit 130 in their own process); the projector applies what the log holds and exits. Exit 0.

With ``WARMUP_SLOW_CALLBACK_MS`` set, the loop runs in asyncio debug mode with that slow-callback
threshold: asyncio then logs every callback that held the loop longer (the tests fail on any).
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path
from types import FrameType

import uvicorn

from warmup.errors import UsageError
from warmup.log import Log, as_log, is_stream_url, open_log_backend
from warmup.runner.projector_child import ProjectorChild, check_projections
from warmup.serve.app import begin_stop, build_app
from warmup.serve.catalog import TaskCatalog
from warmup.serve.config import ServeConfig
from warmup.serve.hub import EventHub
from warmup.serve.launcher import Launcher
from warmup.serve.state import ServeState
from warmup.serve.stream import StreamingServer

SLOW_CALLBACK_ENV = "WARMUP_SLOW_CALLBACK_MS"


def say(message: str) -> None:
    print(f"warmup serve: {message}", file=sys.stderr, flush=True)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or one line (exit 2) saying why not."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"--port {port}: already in use on {host} (pick another, or --port 0 for any free one)"
            ) from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


class _Server(StreamingServer):
    """The hub's uvicorn (its streams end as shutdown begins), where a signal also stops starting
    runs and schedules at once, and is not raised again once the server has stopped (uvicorn would:
    we still have runs to wait for and a projector to stop, and exit 0)."""

    def __init__(self, config: uvicorn.Config, hub: EventHub, on_signal: object) -> None:
        super().__init__(config, hub)
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True
        callback = self._on_signal
        if callable(callback):
            callback()


def check_database(db_path: Path) -> None:
    """A ``--db`` that exists must be a SQLite database (the projector builds or rebuilds its tables)."""
    if not db_path.exists():
        return
    try:
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"--db {db_path}: not a database warmup can use ({exc}); give another --db") from None


def run_serve(config: ServeConfig, *, projection_args: list[str] | None = None) -> int:
    config.check()
    check_database(config.db_path)
    if projection_args:
        refused = check_projections(projection_args)
        if refused is not None:
            raise UsageError(refused)
    log: Log = open_log_backend(config.log) if is_stream_url(config.log) else as_log(config.log)
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"

    catalog = TaskCatalog(config.tasks_dir)
    state = ServeState(config=config, log=log, catalog=catalog, launcher=Launcher(config, log, say))
    state.hub = EventHub(log)

    def started() -> None:
        loop = asyncio.get_running_loop()
        threshold = os.environ.get(SLOW_CALLBACK_ENV)
        if threshold:
            loop.set_debug(True)
            loop.slow_callback_duration = float(threshold) / 1000
        print(f"warmup serve: {url} (tasks: {config.tasks_dir}, log: {log.name}, db: {config.db_path})",
              flush=True)

    app = build_app(state, on_started=started)
    projector = ProjectorChild(log.name, config.db_path, projection_args or [])
    projector.start()
    loop_holder: dict[str, asyncio.AbstractEventLoop] = {}

    def on_signal() -> None:
        loop = loop_holder.get("loop")
        if loop is not None:
            loop.call_soon_threadsafe(begin_stop, state, app.state.background)

    server = _Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", loop="asyncio",
                                    http="h11", timeout_graceful_shutdown=5), state.hub, on_signal)

    async def main() -> None:
        loop_holder["loop"] = asyncio.get_running_loop()
        await server.serve(sockets=[sock])

    try:
        asyncio.run(main())
    finally:
        sock.close()
        problem = projector.stop()
        if problem:
            say(problem)
    return 0

