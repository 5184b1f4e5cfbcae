"""One NATS connection per process and servers+credentials, driven by a private asyncio loop.

nats-py is asyncio; the log interface is synchronous and is called from plain code and from the
runner's own loop thread alike. So each ``NatsConnection`` runs its own event loop in a daemon
thread, and sync code runs coroutines there: ``conn.call(coro, timeout=...)`` (never from that loop
thread itself). Connections are shared through a module-level cache (``connection_for``) and drained
at exit.

Invariants: the connection reconnects forever (a server restart or a cluster node going down is
waited out, publishes are retried by the appender); nats-py's default callbacks (which print
tracebacks) are replaced by quiet ones; no credential appears in any message.
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from warmup.errors import WarmupError
from warmup.log.nats_url import NatsAuth, NatsTarget

T = TypeVar("T")
CONNECT_TIMEOUT_S = 2
RECONNECT_WAIT_S = 0.25
CALL_TIMEOUT_S = 30.0


async def _quiet_error(exc: Exception) -> None:
    """nats-py's default prints a traceback; connection trouble is retried, so say nothing."""


async def _quiet() -> None:
    pass


class NatsConnection:
    """A connected ``nats.aio.client.Client`` (``nc``) and its JetStream context (``js``) on a private loop."""

    def __init__(self, target: NatsTarget, auth: NatsAuth) -> None:
        self.target = target
        self.auth = auth
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"nats {target.display_servers}", daemon=True)
        self._thread.start()
        self.nc: Client
        self.js: JetStreamContext
        try:
            self.nc = self.call(self._connect(), timeout=CONNECT_TIMEOUT_S * 3 + 5)
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise
        self.js = self.nc.jetstream(timeout=10)
        self.closed = False

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _connect(self) -> Client:
        servers = list(self.target.servers)
        try:
            return await nats.connect(
                servers=servers,
                connect_timeout=CONNECT_TIMEOUT_S,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=RECONNECT_WAIT_S,  # type: ignore[arg-type]
                error_cb=_quiet_error,
                disconnected_cb=_quiet,
                reconnected_cb=_quiet,
                closed_cb=_quiet,
                name="warmup",
                **self.auth.kwargs(),  # type: ignore[arg-type]
            )
        except Exception as exc:  # nats-py raises several kinds; word them for people
            raise WarmupError(self._connect_failure(exc)) from None

    def _connect_failure(self, exc: Exception) -> str:
        where = self.target.display_servers
        text = str(exc).lower()
        if "authorization" in text or "authentication" in text or "permissions" in text:
            creds = f" (credentials from {self.auth.source})" if self.auth.source else " (no WARMUP_NATS_CREDS)"
            return f"NATS at {where} refused the credentials{creds}: authorization violation"
        if "refused" in text or isinstance(exc, ConnectionRefusedError):
            return f"cannot reach NATS at {where}: connection refused (is nats-server running?)"
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) or "timeout" in text:
            return f"cannot reach NATS at {where}: timed out (is nats-server running?)"
        if "no servers available" in text:
            return f"cannot reach NATS at {where}: connection refused (is nats-server running?)"
        return f"cannot reach NATS at {where}: {type(exc).__name__} (is nats-server running?)"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT_S) -> T:
        """Run ``coro`` on the connection's loop and return its result (raises its exception);
        ``TimeoutError`` after ``timeout`` seconds (the coroutine is cancelled)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("NatsConnection.call from its own loop thread would deadlock")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        """Drain and close the connection, stop the loop (idempotent)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.call(self._shutdown(), timeout=10)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)

    async def _shutdown(self) -> None:
        """Drain (or close, if the server is gone), then cancel what nats-py left running."""
        try:
            await asyncio.wait_for(self.nc.drain(), 3)
        except Exception:
            pass
        try:
            if not self.nc.is_closed:
                await asyncio.wait_for(self.nc.close(), 3)
        except Exception:
            pass
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


_CACHE: dict[tuple[tuple[str, ...], NatsAuth], NatsConnection] = {}
_LOCK = threading.Lock()


def connection_for(target: NatsTarget, auth: NatsAuth) -> NatsConnection:
    """The process's connection to ``target``'s servers with ``auth`` (connected on first use)."""
    key = (target.servers, auth)
    with _LOCK:
        conn = _CACHE.get(key)
        if conn is not None and not conn.closed and not conn.nc.is_closed:
            return conn
        conn = NatsConnection(target, auth)
        _CACHE[key] = conn
        return conn


def close_all() -> None:
    """Drain every cached connection (at exit; tests that stop servers call it too)."""
    with _LOCK:
        conns = list(_CACHE.values())
        _CACHE.clear()
    for conn in conns:
        conn.close()


def note(message: str) -> None:
    """One line to stderr, prefixed like the CLI's."""
    print(f"warmup: {message}", file=sys.stderr, flush=True)


atexit.register(close_all)
