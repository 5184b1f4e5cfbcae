"""``warmup project`` and ``warmup replay``: the projector as a process, with its messages and signals.

``project --follow`` stops on SIGINT or SIGTERM by setting a flag, never in the middle of a
batch: it then applies what the log already holds and exits 0. That is how ``warmup run`` stops the
projector it started: after writing ``run_finished`` it sends SIGTERM, and the tables are complete
when the child exits. A second signal interrupts at once (the open transaction rolls back).

Following polls the log's size ten times a second rather than using ``Follower``: each batch reads
from the checkpoint in the database anyway, so all it needs is a cheap "has it grown?".
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from types import FrameType

import click

from warmup.errors import UsageError, no_log
from warmup.events.logfile import check_log_file
from warmup.projections.core.schema import PROJECTION_VERSION
from warmup.projector.projector import BatchResult, Projector, VersionMismatch
from warmup.projector.replay import replay

FOLLOW_POLL_S = 0.1


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        click.echo(message, err=True)


def _summary(result: BatchResult, log_path: Path, db_path: Path) -> str:
    text = f"applied {result.applied} events from {log_path} to {db_path}"
    if result.rejected:
        text += f"; {result.rejected} invalid lines skipped (see the rejected_events table)"
    return text


class _StopFlag:
    """Set by SIGINT/SIGTERM; a second signal raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.stopped = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.stopped:
            raise KeyboardInterrupt
        self.stopped = True

    def install(self) -> None:
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)


def _open(log_path: Path, db_path: Path, strict: bool, quiet: bool) -> Projector:
    """Open the projector; a database of another projection version is rebuilt first."""
    try:
        return Projector(log_path, db_path, strict=strict)
    except VersionMismatch as exc:
        # Said even with --quiet: a rebuild is worth knowing about.
        _say(False, f"{db_path} was built by projection version {exc.found}; this warmup has version "
                    f"{PROJECTION_VERSION}: rebuilding it from the log")
        replay(log_path, db_path)
        return Projector(log_path, db_path, strict=strict)


def run_project(log_path: Path, db_path: Path, *, follow: bool, strict: bool, quiet: bool) -> int:
    stop = _StopFlag()
    if follow:
        stop.install()
        while not log_path.exists():  # a run may not have created it yet
            if stop.stopped:
                return 0
            time.sleep(FOLLOW_POLL_S)
    check_log_file(log_path)
    if not log_path.is_file():
        raise UsageError(no_log(log_path))
    with _open(log_path, db_path, strict, quiet) as projector:
        total = projector.catch_up()
        if not follow:
            _say(quiet, _summary(total, log_path, db_path))
            return 0
        size = _size(log_path)  # before saying "following"; None if it is gone already (waited for below)
        _say(quiet, f"{_summary(total, log_path, db_path)}; following (Ctrl-C to stop)")
        while not stop.stopped:
            time.sleep(FOLLOW_POLL_S)
            now = _size(log_path)
            if now is None:  # removed or being rotated: wait for it (another file will be refused)
                if size is not None:
                    _say(quiet, f"the log {log_path} is gone; waiting for it to come back")
                size = None
                continue
            if now != size:
                size = now
                result = projector.catch_up(should_stop=lambda: stop.stopped)
                if result.applied or result.rejected:
                    _say(quiet, _summary(result, log_path, db_path))
                total.applied += result.applied
                total.rejected += result.rejected
        final = projector.catch_up() if log_path.exists() else BatchResult()  # what the log holds now
        total.applied += final.applied
        total.rejected += final.rejected
        _say(quiet, f"stopped: {_summary(total, log_path, db_path)}")
    return 0


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def run_replay(
    log_path: Path, db_path: Path, *, quiet: bool, until: str | None = None, run_ids: tuple[str, ...] = ()
) -> int:
    started = time.perf_counter()
    result = replay(log_path, db_path, until=until, run_ids=run_ids)
    seconds = time.perf_counter() - started
    rate = result.applied / seconds if seconds else 0.0
    _say(quiet, f"replayed: {_summary(result, log_path, db_path)} in {seconds:.2f} s ({rate:,.0f} events/s)")
    return 0

