"""``warmup worker --log nats://...``: pull accounts from the work queue and drive them, on any host.

One browser per worker; up to ``concurrency`` accounts at once, each exactly as ``warmup run`` drives
it (``warmup.runner.engine``: same events, scrubbing, artifacts under this worker's ``--artifacts``).

For each work item (``warmup.workers.queue``):

1. the run's task is rebuilt from its ``run_started`` record (``${env.*}`` from this worker's
   environment), once per run;
2. the account's lease is taken (``warmup.runs.kv``); held by another process, the item goes back
   to the queue for a little while (``nak``);
3. the account's events in the log say where it stands. Final already (a worker that died after
   its last event but before its ack): the item is acked, nothing is driven, so an account is never
   counted twice. An attempt started and never finished: its worker died; ``account_finished``
   INTERRUPTED with ``retrying: true`` closes that attempt, and the next one starts here;
4. while the account runs, the item gets ``in_progress`` every third of the ack wait, so JetStream
   hands it to another worker only if this one dies. A lost lease, or the run's coordinator
   stopping it, interrupts the account;
5. once the account is final, the item is acked and the lease released.

Invariant: an account is driven only while its lease is held, so never by two workers at once.
SIGINT/SIGTERM: fetch nothing more; running accounts get the grace period, then end INTERRUPTED.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, async_playwright

from warmup.errors import UsageError
from warmup.events.envelope import host_and_pid
from warmup.log.nats import NatsLog
from warmup.recover import BETWEEN_ATTEMPTS, FINAL, RUNNING, RunState, scan_run
from warmup.runner.engine import FAILED, INTERRUPTED, Runner, running_browser
from warmup.runner.progress import LineProgress
from warmup.runner.recorder import Recorder
from warmup.runs.kv import KvLiveness
from warmup.tasks import Task, task_from_record
from warmup.workers.coordinator import stop_key
from warmup.workers.queue import WorkItem, WorkQueue

MAX_TAKEOVERS = 3  # attempts cut off by a dead worker, beyond the task's retries, before the account FAILS
BUSY_RETRY_S = 2.0  # an item whose account another process drives comes back after this long
FETCH_WAIT_S = 1.0


@dataclass
class _Run:
    """What a worker keeps about one run it drives accounts of."""

    runner: Runner | None
    problem: str | None = None  # why its accounts cannot be driven here (a task that does not load)


@dataclass
class WorkerStats:
    counts: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


def _say(message: str) -> None:
    print(f"warmup: {message}", file=sys.stderr, flush=True)


class Worker:
    def __init__(self, log: NatsLog, *, concurrency: int, browser_path: str, headless: bool, artifacts: Path,
                 grace_s: float, idle_exit_s: float | None = None) -> None:
        self.log = log
        self.concurrency = concurrency
        self.browser_path = browser_path
        self.headless = headless
        self.artifacts = artifacts
        self.grace_s = grace_s
        self.idle_exit_s = idle_exit_s
        self.queue = WorkQueue(log)
        self.liveness = KvLiveness(log)
        self.bucket = self.liveness.bucket
        self.appender = log.appender()
        host, pid = host_and_pid()
        self.label = f"{host} {pid}"
        self.progress = LineProgress()
        self.runs: dict[str, _Run] = {}
        self.running: dict[str, asyncio.Task[None]] = {}
        self.stopping = False
        self.signals = 0
        self.stats = WorkerStats()
        self.failed: str | None = None  # why this worker stopped on its own (exit 1)

    # -- stopping ---------------------------------------------------------------------------------
    def _on_signal(self, signame: str) -> None:
        self.signals += 1
        if not self.stopping:
            self.stopping = True
            self.progress.note(f"{signame}: taking no more accounts; {len(self.running)} running get "
                               f"{self.grace_s:g} s to finish (again to stop now)")
            for entry in self.runs.values():
                if entry.runner is not None:
                    entry.runner.stopping, entry.runner.reason = True, f"{signame} received by the worker"
            asyncio.get_running_loop().call_later(self.grace_s, self._cancel_all)
        else:
            self._cancel_all()

    def _cancel_all(self) -> None:
        for task in list(self.running.values()):
            task.cancel()

    # -- the loop ---------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig.name)
        try:
            async with async_playwright() as pw, running_browser(pw, self.browser_path, self.headless) as browser:
                await self._pull(browser)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.queue.close()
            self.appender.close()
        counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(self.stats.counts.items())) or "no account"
        print(f"worker {self.label}: {counts} in {time.monotonic() - self.stats.started:.1f} s", flush=True)
        if self.failed:
            return 1
        return 130 if self.signals else 0

    async def _pull(self, browser: Browser) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        idle_since = time.monotonic()
        self.progress.note(f"worker {self.label}: taking accounts from {self.log.name} "
                           f"(up to {self.concurrency} at once)")
        while not self.stopping:
            await slots.acquire()
            if self.stopping:
                slots.release()
                break
            try:
                msg = await self.queue.fetch(FETCH_WAIT_S)
            except Exception as exc:  # the server is away: keep trying (the connection reconnects)
                slots.release()
                _say(f"cannot fetch work from {self.log.name} ({type(exc).__name__}); trying again")
                await asyncio.sleep(1.0)
                continue
            if msg is None:
                slots.release()
                if not tasks and self.idle_exit_s is not None and time.monotonic() - idle_since > self.idle_exit_s:
                    break
                continue
            task = asyncio.create_task(self._handle(browser, msg, slots))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            idle_since = time.monotonic()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- one item ---------------------------------------------------------------------------------
    async def _handle(self, browser: Browser, msg: Any, slots: asyncio.Semaphore) -> None:
        try:
            item = WorkItem.decode(msg.data)
            if item is None:
                await self.queue.ack(msg)  # not an item of ours: never handed out again
                return
            await self._item(browser, msg, item)
        except Exception as exc:  # a bug or a lost server must cost this item's turn, not the worker
            _say(f"work item failed here ({type(exc).__name__}: {exc}); it will be handed out again")
        finally:
            slots.release()

    async def _item(self, browser: Browser, msg: Any, item: WorkItem) -> None:
        state = await asyncio.to_thread(scan_run, self.log, item.run_id)
        if state.started is None or state.finished is not None or item.account_id not in state.accounts:
            await self.queue.ack(msg)  # a run unknown, already closed, or not this account's
            return
        if state.accounts[item.account_id].status in FINAL or await asyncio.to_thread(self._stopped, item.run_id):
            await self.queue.ack(msg)
            return
        entry = self._run_for(state)
        lost: list[str] = []
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()

        def on_lost(why: str) -> None:  # (called on the connection's thread)
            lost.append(why)
            if me is not None:
                loop.call_soon_threadsafe(self._interrupt, item, f"its lease was lost ({why})", True)

        lease = self.liveness.account_lease(item.account_id, item.run_id, on_lost=on_lost)
        holder = await asyncio.to_thread(lease.try_acquire)
        if holder is not None:
            await self.queue.nak(msg, BUSY_RETRY_S)
            return
        try:
            # Read again now that the lease is ours: the last holder may have finished it meanwhile.
            state = await asyncio.to_thread(scan_run, self.log, item.run_id)
            account_state = state.accounts[item.account_id]
            if account_state.status in FINAL or state.finished is not None:
                await self.queue.ack(msg)
                return
            if entry.runner is None:  # the task cannot run here: the account fails, with why
                self._record_failure(state, item, entry.problem or "the task cannot run on this worker")
                await self.queue.ack(msg)
                return
            runner = entry.runner
            if account_state.status == RUNNING:  # its worker died mid-attempt: close that attempt
                runner.rec.emit(
                    "account_finished", account_id=item.account_id, status=INTERRUPTED, attempt=account_state.attempt,
                    retrying=True, error=(f"interrupted during attempt {account_state.attempt}: its worker stopped "
                                          f"(no heartbeat for {self.queue.ack_wait_s:g} s); taken over by worker "
                                          f"{self.label}"),
                )
            first = account_state.attempt if account_state.status in (RUNNING, BETWEEN_ATTEMPTS) else 0
            account = next(a for a in runner.task.accounts if a.id == item.account_id)
            if first >= runner.task.retries + 1 + MAX_TAKEOVERS:  # its workers keep dying on it (memory?)
                runner.rec.emit(
                    "account_finished", account_id=item.account_id, status=FAILED, attempt=first, retrying=False,
                    error=f"given up after {first} attempts: the workers driving it stopped {MAX_TAKEOVERS} times",
                )
                await self.queue.ack(msg)
                return
            if self.stopping or lost:  # (this worker is stopping, or lost the lease already: another one)
                await self.queue.nak(msg, 0)
                return
            beat = asyncio.create_task(self._heartbeat(msg, item))
            drive = asyncio.create_task(runner.drive_account(browser, account, first))
            self.running[self._key(item)] = drive
            try:
                await drive  # (it records its own cancellation: it always ends normally)
            finally:
                self.running.pop(self._key(item), None)
                beat.cancel()
            if runner.rec.dead:  # its events could not be written: not done; this worker stops
                self.runs.pop(item.run_id, None)
                await self.queue.nak(msg, 0)
                self._failed(f"the event log could not be written ({runner.rec.error}): stopping this worker")
                return
            if item.account_id in runner.handed_on:  # the lease was lost: another worker goes on
                runner.handed_on.discard(item.account_id)
                await self.queue.nak(msg, 0)
                return
            status = runner.final_status.get(item.account_id, INTERRUPTED)
            self.stats.counts[status] = self.stats.counts.get(status, 0) + 1
            await self.queue.ack(msg)
        finally:
            await asyncio.to_thread(lease.release)

    @staticmethod
    def _key(item: WorkItem) -> str:
        return f"{item.run_id}/{item.account_id}"

    def _interrupt(self, item: WorkItem, why: str, hand_on: bool = False) -> None:
        """Cancel the account's drive (it records INTERRUPTED); ``hand_on``: not its end, another
        worker goes on with it (``retrying: true``, the item back on the queue)."""
        task = self.running.get(self._key(item))
        entry = self.runs.get(item.run_id)
        if task is None or entry is None or entry.runner is None:
            return
        entry.runner.reasons[item.account_id] = why
        if hand_on:
            entry.runner.handed_on.add(item.account_id)
        task.cancel()

    def _failed(self, why: str) -> None:
        if not self.failed:
            self.failed = why
            _say(why)
        if not self.stopping:
            self.stopping = True

    async def _heartbeat(self, msg: Any, item: WorkItem) -> None:
        """Tell JetStream the item is being worked on; watch for the coordinator stopping the run."""
        interval = self.queue.ack_wait_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.queue.in_progress(msg)
            except Exception:
                pass  # (a node down: the next beat, well within the ack wait, tries again)
            if await asyncio.to_thread(self._stopped, item.run_id):
                self._interrupt(item, "the run was stopped by its coordinator")
                return
            if await asyncio.to_thread(self._finished, item.run_id):  # closed meanwhile (recover, a 2nd Ctrl-C)
                self._interrupt(item, "the run was closed meanwhile")
                return

    def _finished(self, run_id: str) -> bool:
        """Whether the run's ``run_finished`` is in the log (read from that subject alone)."""
        view = self.log.narrowed(run_id=run_id, types=("run_finished",))
        try:
            with view.reader() as reader:
                return bool(reader.read(view.START, 1 << 16).lines)
        except Exception:
            return False

    def _stopped(self, run_id: str) -> bool:
        try:
            return self.bucket.holder(stop_key(run_id)) is not None
        except OSError:
            return False

    def _run_for(self, state: RunState) -> _Run:
        entry = self.runs.get(state.run_id)
        if entry is not None:
            return entry
        assert state.started is not None
        record = state.started.task
        try:
            if not record:
                raise UsageError("the run's task definition is not in the log")
            task: Task = task_from_record(record, list(state.started.accounts),
                                          where=f"run {state.run_id}: the recorded task")
        except UsageError as exc:
            entry = _Run(None, f"worker {self.label} cannot run this task: {exc}")
            self.runs[state.run_id] = entry
            _say(entry.problem or "")
            return entry
        recorder = Recorder(self.appender, state.run_id, task.scrubber(), task_id=task.id)
        runner = Runner(
            task, recorder, artifacts_dir=self.artifacts, browser_path=self.browser_path, headless=self.headless,
            concurrency=self.concurrency, grace_s=self.grace_s, progress=self.progress, liveness=None,
        )
        runner.worker = self.label
        runner.stopping = self.stopping
        entry = _Run(runner)
        self.runs[state.run_id] = entry
        return entry

    def _record_failure(self, state: RunState, item: WorkItem, why: str) -> None:
        attempt = state.accounts[item.account_id].attempt
        self.appender.emit("account_finished", run_id=item.run_id, account_id=item.account_id, status=FAILED,
                           error=why, attempt=attempt, retrying=False, task_id=state.started.task_id
                           if state.started is not None else None)
        self.stats.counts[FAILED] = self.stats.counts.get(FAILED, 0) + 1

