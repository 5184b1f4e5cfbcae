"""``warmup worker``: check the options and the browser, then pull accounts until stopped (exit code)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from warmup.browser import find_browser
from warmup.errors import UsageError
from warmup.log import is_stream_url, open_log_backend
from warmup.runner.command import grace_seconds


def run_worker(log_path: Path | str, *, concurrency: int, artifacts: Path, browser_path: Path | None,
               headless: bool, idle_exit_s: float | None, replicas: int | None) -> int:
    if not is_stream_url(log_path):
        raise UsageError("a worker takes accounts from a stream: give --log nats://HOST:PORT/STREAM "
                         "(or WARMUP_LOG), the one `warmup run --workers` uses")
    log = open_log_backend(log_path, replicas=replicas)
    executable = find_browser(browser_path, headless=headless)
    grace_s = grace_seconds()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    from warmup.log.nats import NatsLog
    from warmup.workers.worker import Worker

    assert isinstance(log, NatsLog)
    worker = Worker(log, concurrency=concurrency, browser_path=executable, headless=headless, artifacts=artifacts,
                    grace_s=grace_s, idle_exit_s=idle_exit_s)
    return asyncio.run(worker.run())
