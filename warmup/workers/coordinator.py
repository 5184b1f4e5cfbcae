"""``warmup run TASK --log nats://... --workers``: publish the run, hand its accounts to workers, wait.

The coordinator drives no browser. It appends ``run_started`` (``workers: true``), puts one work item
per account on the work queue (``warmup.workers.queue``), then follows the run's own subjects in the
log until every account is final, showing progress as ``warmup run`` does, and appends
``run_finished`` with the same statuses and exit codes.

Invariants:

- The run's lease (``warmup.runs.kv``) is held, and renewed, from before ``run_started`` until
  after ``run_finished``: a coordinator that dies leaves a run that ``recover`` closes on any host.
- An account is final once its ``account_finished`` without ``retrying`` is in the log (workers
  write it). The coordinator counts each account once, at its first final event.
- Stopping (SIGINT/SIGTERM): the items still queued are purged, and a ``stop.<run_id>`` lease tells
  the workers to start nothing more of this run and to stop what runs (they record INTERRUPTED).
  After ``grace_s`` plus two heartbeats, every account still not final is closed here: CANCELLED if
  it never started, INTERRUPTED if it did. A second signal stops waiting at once.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from warmup.errors import WarmupError
from warmup.events.envelope import AccountFinished, AccountStarted, EventDecoder, InvalidEvent, host_and_pid
from warmup.runner.engine import CANCELLED, COMPLETED, FAILED, INTERRUPTED, RunResult
from warmup.runner.progress import Progress
from warmup.runner.recorder import Recorder
from warmup.runs.origin import FROM_CLI, RunOrigin
from warmup.tasks import Task
from warmup.workers.queue import WorkItem, WorkQueue

if TYPE_CHECKING:
    from warmup.log.nats import NatsLog
    from warmup.runs.kv import Bucket

IDLE_NOTE_S = 10.0  # say how to start a worker if nothing happened for this long
READ_BYTES = 1 << 20


def stop_key(run_id: str) -> str:
    """The lease that tells workers a run is stopping (``warmup.runs.kv``)."""
    return f"stop.{run_id}"


@dataclass
class _Account:
    attempt: int = 0
    started: bool = False
    final: str | None = None


@dataclass
class _Fold:
    accounts: dict[str, _Account]
    counts: dict[str, int] = field(default_factory=lambda: {COMPLETED: 0, FAILED: 0, CANCELLED: 0, INTERRUPTED: 0})

    def open(self) -> list[str]:
        return [a for a, s in self.accounts.items() if s.final is None]


class Coordinator:
    def __init__(self, task: Task, recorder: Recorder, log: NatsLog, bucket: Bucket, progress: Progress, *,
                 grace_s: float, resumed_from: str | None = None, origin: RunOrigin = FROM_CLI) -> None:
        self.task, self.rec, self.log, self.bucket, self.progress = task, recorder, log, bucket, progress
        self.grace_s = grace_s
        self.resumed_from = resumed_from
        self.origin = origin
        self.queue = WorkQueue(log)
        self.signals = 0
        self._watch: Any = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self._watch is not None:
            self._watch.stop()

    def run(self) -> RunResult:
        started = time.monotonic()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            status, fold = self._run()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return RunResult(self.rec.run_id, status, dict(fold.counts), time.monotonic() - started, self.rec.error)

    def _run(self) -> tuple[str, _Fold]:
        task, run_id = self.task, self.rec.run_id
        host, pid = host_and_pid()
        fold = _Fold({a.id: _Account() for a in task.accounts})
        self.rec.emit(
            "run_started", task_id=task.id, task_name=task.name, accounts=[a.id for a in task.accounts],
            steps=len(task.steps), concurrency=task.concurrency, host=host, pid=pid, task=task.record(),
            resumed_from=self.resumed_from, workers=True, headless=True, **self.origin.fields(),
        )
        self.progress.start(run_id, len(task.accounts))
        if self.rec.dead:
            return self._finish(fold, FAILED, "the event log could not be written")
        try:
            self.queue.publish([WorkItem(run_id, a.id) for a in task.accounts])
        except WarmupError as exc:
            self.progress.note(str(exc))
            self._close_open(fold, f"the accounts could not be queued ({exc})")
            return self._finish(fold, FAILED, str(exc))
        self.progress.note(f"{len(task.accounts)} accounts queued for workers on {self.log.name}")
        view = self.log.narrowed(run_id=run_id)
        decode = EventDecoder()
        position = view.START
        stopping_since: float | None = None
        last_change = time.monotonic()
        said_idle = False
        said_read_error = False
        with view.watch() as watch, view.reader() as reader:
            self._watch = watch
            while fold.open():
                try:
                    batch = reader.read(position, READ_BYTES)
                except WarmupError as exc:  # a node restarting, an election: read again in a moment
                    if not said_read_error:
                        self.progress.note(f"cannot read the log now ({exc}); trying again")
                        said_read_error = True
                    watch.wait(1.0)
                    continue
                said_read_error = False
                position = batch.end
                for line in batch.lines:
                    try:
                        event = decode(line)
                    except InvalidEvent:
                        continue
                    if self._apply(fold, event):
                        last_change = time.monotonic()
                if batch.lines:
                    continue
                if self.signals and stopping_since is None:
                    stopping_since = time.monotonic()
                    self._stop_workers(run_id)
                if self.rec.dead:
                    break
                if stopping_since is not None:
                    # the workers see the stop at their next heartbeat (a third of the ack wait) and
                    # give their accounts the grace period: wait for two heartbeats and the grace
                    waited = time.monotonic() - stopping_since
                    if self.signals > 1 or waited > self.grace_s + self.queue.ack_wait_s * 2 / 3 + 2:
                        break
                elif not said_idle and time.monotonic() - last_change > IDLE_NOTE_S and not any(
                    s.started for s in fold.accounts.values()
                ):
                    said_idle = True
                    self.progress.note(
                        f"no worker has taken an account yet: start one with `warmup worker --log {self.log.name}`"
                    )
                watch.wait(0.5)
            self._watch = None
        if stopping_since is not None or self.signals:
            self._close_open(fold, "the run was stopped (SIGINT/SIGTERM to its coordinator)")
            return self._finish(fold, INTERRUPTED, "SIGINT/SIGTERM received")
        if self.rec.dead:
            return self._finish(fold, FAILED, "the event log could not be written")
        done = fold.counts[COMPLETED]
        total = len(task.accounts)
        if done == total:
            return self._finish(fold, COMPLETED, None)
        return self._finish(fold, FAILED, f"{total - done} of {total} accounts not completed")

    def _apply(self, fold: _Fold, event: Any) -> bool:
        account = fold.accounts.get(getattr(event, "account_id", ""))
        if account is None or account.final is not None:
            return False
        if isinstance(event, AccountStarted):
            account.started, account.attempt = True, event.attempt
            return True
        if isinstance(event, AccountFinished) and not event.retrying:
            account.final = event.status
            fold.counts[event.status] = fold.counts.get(event.status, 0) + 1
            detail = self.rec.scrub(event.error or "")
            self.progress.account_done(event.account_id, event.status, detail)
            return True
        return False

    def _stop_workers(self, run_id: str) -> None:
        self.progress.note(
            f"stopping: no new accounts; running ones get {self.grace_s:g} s to finish (again to stop now)"
        )
        try:
            self.queue.purge_run(run_id)
        except Exception:  # (the workers also see the stop lease and start nothing more)
            pass
        try:
            self.bucket.take(stop_key(run_id), b'{"stopping": true}')
        except OSError:
            pass

    def _close_open(self, fold: _Fold, why: str) -> None:
        for account_id in fold.open():
            account = fold.accounts[account_id]
            if account.started:
                status, error = INTERRUPTED, f"interrupted during attempt {account.attempt}: {why}"
            else:
                status, error = CANCELLED, f"not started: {why}"
            self.rec.emit("account_finished", account_id=account_id, status=status, error=error,
                          attempt=account.attempt if account.started else 0, retrying=False)
            account.final = status
            fold.counts[status] += 1
            self.progress.account_done(account_id, status, error)

    def _finish(self, fold: _Fold, status: str, reason: str | None) -> tuple[str, _Fold]:
        self.rec.emit("run_finished", status=status, reason=reason, counts=dict(fold.counts))
        self.bucket.give_back(stop_key(self.rec.run_id))
        self.progress.close()
        return status, fold
