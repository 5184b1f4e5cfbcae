"""``warmup project`` and ``warmup replay``: the projector as a process, with its messages and signals.

``project --follow`` stops on SIGINT or SIGTERM by setting a flag, never in the middle of a
batch: it then applies what the log already holds and exits 0. That is how ``warmup run`` stops the
projector it started: after writing ``run_finished`` it sends SIGTERM, and the tables are complete
when the child exits. A second signal interrupts at once (the open transaction rolls back).

Following waits on the log's watch (``Log.watch``: inotify for a file), so an append is applied
within a millisecond or so rather than at the next poll; each batch reads from the checkpoints in
the databases anyway, so all the watch says is "it may have grown".

A projection whose handler raised is stopped (said at once, on stderr); the others go on, and the
command exits 1 at its end.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import click

from warmup.errors import UsageError
from warmup.log import FileLog, Log, as_log, require_log
from warmup.projection import Projection
from warmup.projections.core.schema import PROJECTION_VERSION
from warmup.projector.replay import replay
from warmup.projector.runner import BatchResult, ProjectionRunner, VersionMismatch

FOLLOW_POLL_S = 0.1  # (waiting for a log that does not exist yet)
WATCH_TIMEOUT_S = 1.0  # a wake-up without any change, in case one was missed
# Under a steady stream of events, batches start at most this often, so that several events share
# one transaction (each costs ~1 ms of CPU whatever it holds); after a quiet spell the first event
# is applied at once. Bounds the added latency to this, and the projector's CPU at 200 events/s.
FOLLOW_GATHER_S = 0.02


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        click.echo(message, err=True)


def _summary(result: BatchResult, log: Log | Path | str, db_path: Path) -> str:
    name = log.name if isinstance(log, Log) else log
    text = f"applied {result.applied} events from {name} to {db_path}"
    if result.rejected:
        text += f"; {result.rejected} invalid lines skipped (see the rejected_events table)"
    return text


class _StopFlag:
    """Set by SIGINT/SIGTERM; a second signal raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.stopped = False
        self.on_stop: Callable[[], None] = lambda: None  # wakes a blocked wait (safe in a handler)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.stopped:
            raise KeyboardInterrupt
        self.stopped = True
        self.on_stop()

    def install(self) -> None:
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)


def _open(log: Log, db_path: Path, strict: bool, quiet: bool, projections: list[Projection],
          rebuild: bool) -> ProjectionRunner:
    """Open the runner; a core database of another projection version is rebuilt first (with the
    projections that live in it)."""

    def say(message: str) -> None:
        _say(False, message)  # (even with --quiet: a rebuild or a stopped projection is worth knowing)

    names = [p.name for p in projections] if rebuild else []
    try:
        return ProjectionRunner(log, db_path, projections, strict=strict, rebuild=names, say=say)
    except VersionMismatch as exc:
        _say(False, f"{db_path} was built by projection version {exc.found}; this warmup has version "
                    f"{PROJECTION_VERSION}: rebuilding it from the log")
        replay(log, db_path, projections=projections)
        return ProjectionRunner(log, db_path, projections, strict=strict, say=say)


def run_project(log_path: Log | Path | str, db_path: Path, *, follow: bool, strict: bool, quiet: bool,
                projections: list[Projection] | None = None, rebuild: bool = False) -> int:
    """The ``warmup project`` command (and ``manage.py warmup_project``): 0, or 1 if a projection stopped."""
    projections = list(projections or ())
    stop = _StopFlag()
    log = as_log(log_path)
    log_path = log.name
    if follow:
        stop.install()
        while not _present(log):  # a run may not have created it yet (something else there: refused below)
            if stop.stopped:
                return 0
            time.sleep(FOLLOW_POLL_S)
    log = require_log(log)
    with _open(log, db_path, strict, quiet, projections, rebuild) as runner:
        if not follow:
            total = runner.catch_up()
            _say(quiet, _summary(total, log_path, db_path))
            return 1 if runner.failures else 0
        with log.watch() as watch:  # (watching before the first read: no append falls in between)
            stop.on_stop = watch.stop
            total = runner.catch_up()
            present = log.exists()
            _say(quiet, f"{_summary(total, log_path, db_path)}; following (Ctrl-C to stop)")
            last_batch = 0.0
            while not stop.stopped:
                watch.wait(WATCH_TIMEOUT_S)
                if stop.stopped:
                    break
                gather = FOLLOW_GATHER_S - (time.monotonic() - last_batch)
                if gather > 0:
                    time.sleep(gather)  # (events keep coming: let a few more share this batch)
                if not log.exists():  # removed or being rotated: wait for it (another file will be refused)
                    if present:
                        _say(quiet, f"the log {log_path} is gone; waiting for it to come back")
                    present = False
                    continue
                present = True
                result = runner.catch_up(should_stop=lambda: stop.stopped)
                last_batch = time.monotonic()
                if result.applied or result.rejected:
                    _say(quiet, _summary(result, log_path, db_path))
                total.applied += result.applied
                total.rejected += result.rejected
        final = runner.catch_up() if log.exists() else BatchResult()  # what the log holds now
        total.applied += final.applied
        total.rejected += final.rejected
        _say(quiet, f"stopped: {_summary(total, log_path, db_path)}")
        return 1 if runner.failures else 0


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def _present(log: Log) -> bool:
    """Something is at the log's place: a file's path names anything (a FIFO too: refused, not awaited)."""
    return log.path.exists() if isinstance(log, FileLog) else log.exists()


def run_replay(
    log_path: Log | Path | str, db_path: Path, *, quiet: bool, until: str | None = None, run_ids: tuple[str, ...] = (),
    projections: list[Projection] | None = None,
) -> int:
    """``warmup replay``: the core tables and the projections beside them, or (with ``projections``)
    those projections alone, reset and rebuilt from the log."""
    if projections:
        if until is not None or run_ids:
            raise UsageError("--projection rebuilds a projection from the whole log: leave out --until/--run")
        return _rebuild_projections(log_path, db_path, projections, quiet=quiet)
    started = time.perf_counter()
    result = replay(log_path, db_path, until=until, run_ids=run_ids)
    seconds = time.perf_counter() - started
    rate = result.applied / seconds if seconds else 0.0
    _say(quiet, f"replayed: {_summary(result, log_path, db_path)} in {seconds:.2f} s ({rate:,.0f} events/s)")
    return 0



def _rebuild_projections(log_path: Log | Path | str, db_path: Path, projections: list[Projection], *,
                         quiet: bool) -> int:
    log = require_log(log_path)
    started = time.perf_counter()
    names = [p.name for p in projections]
    with _open(log, db_path, False, quiet, projections, rebuild=True) as runner:
        runner.catch_up()
        failures = runner.failures
    seconds = time.perf_counter() - started
    _say(quiet, f"rebuilt {', '.join(names)} from {log.name} in {seconds:.2f} s")
    return 1 if failures else 0
