"""``warmup run``: load the task, find a browser, run the accounts, report; returns the exit code.

Order matters: the task file and the browser are checked before anything is started or appended,
so bad input (exit 2) or a missing browser (exit 1) leaves the log untouched. Then the log is
opened, the projector child started (``--project``), and the asyncio runner drives the accounts.

Exit codes: 0 every account completed, 1 some account failed (or the log could not be written, or
the browser would not start), 2 bad input, 130 interrupted (SIGINT/SIGTERM).

stdout gets one summary line per run; progress and problems go to stderr.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from warmup.browser import find_browser
from warmup.errors import UsageError, WarmupError
from warmup.events.envelope import new_run_id
from warmup.events.writer import EventWriter, LogWriteError
from warmup.runner.engine import COMPLETED, INTERRUPTED, Runner
from warmup.runner.progress import make_progress
from warmup.runner.projector_child import ProjectorChild
from warmup.runner.recorder import Recorder
from warmup.tasks import load_task

DEFAULT_GRACE_S = 3.0
GRACE_ENV = "WARMUP_GRACE_S"  # seconds running accounts get after Ctrl-C/SIGTERM


def grace_seconds() -> float:
    raw = os.environ.get(GRACE_ENV)
    if raw is None or raw == "":
        return DEFAULT_GRACE_S
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{GRACE_ENV}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise UsageError(f"{GRACE_ENV} must be 0 or more seconds")
    return value


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_command(
    task_file: Path,
    *,
    log_path: Path,
    db_path: Path,
    concurrency: int | None,
    artifacts: Path,
    browser_path: Path | None,
    headed: bool,
    with_projector: bool,
    fsync: str,
) -> int:
    task = load_task(task_file)
    executable = find_browser(browser_path, headless=not headed)
    grace_s = grace_seconds()
    if concurrency is not None and concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, not {concurrency}")
    effective = concurrency or task.concurrency

    try:
        writer = EventWriter(log_path, fsync="batch" if fsync == "batch" else "always")
    except LogWriteError as exc:
        raise WarmupError(exc.strerror or str(exc), exit_code=1) from None

    projector = ProjectorChild(log_path, db_path) if with_projector else None
    scrub = task.scrubber()
    recorder = Recorder(writer, new_run_id(), scrub)
    runner = Runner(
        task,
        recorder,
        artifacts_dir=artifacts,
        browser_path=executable,
        headless=not headed,
        concurrency=effective,
        grace_s=grace_s,
        progress=make_progress(),
    )
    # Outside the event loop (which handles SIGINT/SIGTERM itself while the accounts run), SIGTERM
    # raises KeyboardInterrupt like Ctrl-C, so the projector child is never left following forever.
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            if projector is not None:
                projector.start()
            result = asyncio.run(runner.run())
        except BaseException:
            if projector is not None:
                projector.kill()
            raise
        finally:
            signal.signal(signal.SIGTERM, _interrupt)  # the loop leaves SIG_DFL behind
            try:
                writer.close()
            except OSError:
                pass
        problem = projector.stop() if projector is not None else None
    finally:
        signal.signal(signal.SIGTERM, previous_term)
    counts = ", ".join(f"{n} {s.lower()}" for s, n in result.counts.items() if n)
    print(
        f"run {result.run_id}: {result.status}: {counts} of {len(task.accounts)} accounts "
        f"in {result.elapsed_s:.1f} s (log: {log_path})",
        flush=True,
    )
    if problem:
        print(f"warmup: {problem}", file=sys.stderr)
    if result.log_error is not None:
        print(f"warmup: {result.log_error.strerror or result.log_error}", file=sys.stderr)
        return 1
    if result.status == INTERRUPTED:
        return 130
    return 0 if result.status == COMPLETED else 1
