"""The asyncio runner: one browser, one context per account, at most N accounts at once.

Per account the log gets ``account_started``, one ``step_finished`` per step tried (in order, with
``artifact_saved`` after screenshots) and ``account_finished``; a failed attempt with retries left
ends ``account_finished`` FAILED with ``retrying: true`` and the next attempt starts. The run is
framed by ``run_started`` (with the task's record, secrets unresolved) and ``run_finished``.

Conditions: a step (or a group's first step, for the whole group) whose ``when``/``unless`` says
skip is recorded ``ok`` and ``skipped`` and counted in neither ``steps_ok`` nor ``steps_failed``;
a group skipped gets one such event per step, so each step's ``index`` appears once per attempt.
A step's ``fail_if`` and ``extract`` run around its action (``runner.guards``); extracted values
live in the attempt (``AccountRun.page_values``, ``${page.NAME}``) and start empty at each attempt.
``save_state`` is the engine's own action; a task that has one saves the state only there.

Stopping (SIGINT/SIGTERM): no account starts any more; accounts still waiting end CANCELLED
(attempt 0); running ones get ``grace_s`` to finish, then their tasks are cancelled and they end
INTERRUPTED. A second signal cancels at once. ``run_finished`` says INTERRUPTED.

Timeouts: each step has ``timeout_ms`` (passed to Playwright, plus an outer safety net); each
attempt has ``account_timeout_s`` for all its steps. A step cut off by the account timeout gets a
failed ``step_finished`` saying so.

The runner owns every cancellation it receives: an account task catches its CancelledError,
records the outcome and returns, so ``gather`` always completes and ``run_finished`` is written.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from warmup.browser import launch_args
from warmup.errors import UsageError, WarmupError
from warmup.events.envelope import host_and_pid
from warmup.events.writer import LogWriteError
from warmup.locks import Holder
from warmup.paths import make_private_dir
from warmup.runner.actions import (
    BASE_URL_KEY,
    SAFETY_MARGIN_MS,
    ActionResult,
    StepFailed,
    describe_error,
    describe_launch_error,
    inherent_ms,
    perform,
)
from warmup.runner.context import context_options
from warmup.runner.guards import condition_holds, extract_value, with_fail_if
from warmup.runner.progress import Progress
from warmup.runner.recorder import Recorder
from warmup.runner.script import ScriptStep, ScriptStepFailed, ScriptSteps, script_account
from warmup.runner.trace import Tracer
from warmup.runs.liveness import AccountLease, Liveness
from warmup.runs.origin import FROM_CLI, RunOrigin
from warmup.tasks import REDACTED, SECRET_VAR, Account, Scrubber, Step, Task
from warmup.tasks.common import SHORT_SECRET
from warmup.tasks.script import resolve_script
from warmup.tasks.steps import EXTRACT_ONLY, SAVE_STATE, Condition

COMPLETED, FAILED, CANCELLED, INTERRUPTED = "COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED"
SCREENSHOT_TIMEOUT_MS = 5_000
ACCOUNT_LOCK_POLL_S = 0.2
DEFAULT_ACCOUNT_WAIT_S = 60.0
CLOSE_TIMEOUT_S = 10.0
MAX_EXTRACTED_CHARS = 1_000  # of an extracted value in step_finished


@asynccontextmanager
async def running_browser(pw: Playwright, executable: str, headless: bool) -> AsyncIterator[Browser]:
    """Chromium for a block: launched (exit 1, one line, if it will not start), closed at the end
    within ``CLOSE_TIMEOUT_S``. Ctrl-C, SIGTERM and SIGHUP are the caller's to handle, not Playwright's."""
    try:
        browser = await pw.chromium.launch(
            executable_path=executable, headless=headless, args=launch_args(),
            handle_sigint=False, handle_sigterm=False, handle_sighup=False,
        )
    except PlaywrightError as exc:
        raise WarmupError(
            f"cannot start the browser {executable}: {describe_launch_error(exc)} (try another with --browser-path)",
            exit_code=1,
        ) from None
    try:
        yield browser
    finally:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await browser.close()
        except (PlaywrightError, TimeoutError):
            pass


class AccountLockError(Exception):
    """The account's lock file could not be created (a full disk, permissions): the account fails."""


@dataclass
class AccountRun:
    """What is known about one account so far; read by the cancel path to record the outcome."""

    account: Account
    attempt: int = 0
    first_attempt: int = 0  # attempts before this process took the account (a worker's redelivered item)
    step: Step | None = None
    step_started: float = 0.0
    steps_ok: int = 0
    steps_failed: int = 0
    steps_skipped: int = 0  # neither ok nor failed: a condition said no
    page_values: dict[str, str] = field(default_factory=dict)  # ${page.NAME}: extracted in this attempt
    # Extracted values that are secrets (a credential-like name, or holding a cookie's value): recorded
    # as ***, and hidden from every later message of the attempt (``Runner._hide``).
    page_secrets: list[str] = field(default_factory=list)
    page_scrub: Scrubber | None = None
    started: float = 0.0
    status: str | None = None
    trace_dropped: str | None = None  # why this attempt's trace was not kept (see runner.trace)


@dataclass
class RunResult:
    run_id: str
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    log_error: LogWriteError | None = None


class Runner:
    def __init__(
        self,
        task: Task,
        recorder: Recorder,
        *,
        artifacts_dir: Path,
        browser_path: str,
        headless: bool,
        concurrency: int,
        grace_s: float,
        progress: Progress,
        liveness: Liveness | None = None,
        account_wait_s: float = DEFAULT_ACCOUNT_WAIT_S,
        resumed_from: str | None = None,
        origin: RunOrigin = FROM_CLI,
    ) -> None:
        self.task = task
        self.rec = recorder
        self.artifacts_dir = artifacts_dir
        self.browser_path = browser_path
        self.headless = headless
        self.concurrency = concurrency
        self.grace_s = grace_s
        self.progress = progress
        self.liveness = liveness  # the account leases (none without a log: unit use)
        self.account_wait_s = account_wait_s
        self.resumed_from = resumed_from
        self.origin = origin  # run_started.trigger / scheduled_for
        self.secrets = task.secret_values()  # every form of these is kept out of traces (runner.trace)
        # A task with save_state steps saves there only: the state at its end (after a logout, say)
        # would overwrite the one it chose to keep.
        self._saves_midway = any(step.action == SAVE_STATE for step in task.steps)
        self.stopping = False
        self.reason: str | None = None
        self.signalled = False
        self.running: dict[str, asyncio.Task[None]] = {}
        self.waiting: dict[str, asyncio.Task[None]] = {}
        self.counts = {COMPLETED: 0, FAILED: 0, CANCELLED: 0, INTERRUPTED: 0}
        self.final_status: dict[str, str] = {}  # account id -> its final status, once recorded
        self._grace: asyncio.TimerHandle | None = None
        self._browser: Browser | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.rec.on_dead = self._log_failed
        self.worker: str | None = None  # "host pid", recorded in account_started by a ``warmup worker``
        # Accounts whose cancellation is not their end (a worker lost the account's lease: another
        # worker goes on with it): their INTERRUPTED attempt is recorded with ``retrying: true``.
        self.handed_on: set[str] = set()
        self.reasons: dict[str, str] = {}  # why one account was cancelled (a worker's), else ``reason``

    # -- stopping ----------------------------------------------------------------------------
    def _on_signal(self, signame: str) -> None:
        self.signalled = True
        if not self.stopping:
            self.stopping = True
            self.reason = f"{signame} received"
            for task in list(self.waiting.values()):
                task.cancel()
            if self.running:
                self.progress.note(
                    f"{signame}: no new accounts; {len(self.running)} running get {self.grace_s:g} s to finish "
                    "(again to stop now)"
                )
                self._grace = asyncio.get_running_loop().call_later(self.grace_s, self._cancel_running)
        else:
            self.progress.note(f"{signame} again: stopping now")
            self._cancel_running()

    def _cancel_running(self) -> None:
        for task in list(self.running.values()):
            task.cancel()

    def _log_failed(self, exc: LogWriteError) -> None:
        """The log cannot be written: start nothing more and stop the running accounts at once."""
        if not self.stopping:
            self.stopping = True
            self.reason = "the event log could not be written"
        # Never the task that is writing: a task cancelled while it runs ends cancelled even if it
        # returns normally, and its CancelledError would escape gather. It sees ``stopping`` itself.
        current = asyncio.current_task()
        for task in list(self.waiting.values()):
            if task is not current:
                task.cancel()
        loop = asyncio.get_running_loop()
        loop.call_soon(self._cancel_running)

    # -- the run -----------------------------------------------------------------------------
    async def run(self) -> RunResult:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig.name)
        started = time.monotonic()
        try:
            async with async_playwright() as pw:
                async with running_browser(pw, self.browser_path, self.headless) as browser:
                    self._browser = browser
                    status = await self._run_accounts(browser)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if self._grace is not None:
                self._grace.cancel()
        return RunResult(self.rec.run_id, status, dict(self.counts), time.monotonic() - started, self.rec.error)

    async def _run_accounts(self, browser: Browser) -> str:
        host, pid = host_and_pid()
        task = self.task
        self.rec.emit(
            "run_started",
            task_id=task.id,
            task_name=task.name,
            accounts=[a.id for a in task.accounts],
            steps=len(task.steps),
            concurrency=self.concurrency,
            host=host,
            pid=pid,
            task=task.record(),
            resumed_from=self.resumed_from,
            browser=browser.version,
            headless=self.headless,
            **self.origin.fields(),
        )
        self.progress.start(self.rec.run_id, len(task.accounts))
        semaphore = asyncio.Semaphore(self.concurrency)
        tasks = [asyncio.create_task(self._account(browser, semaphore, a), name=a.id) for a in task.accounts]
        await asyncio.gather(*tasks)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self.signalled:
            status, reason = INTERRUPTED, self.reason
        elif self.rec.dead:
            status, reason = FAILED, self.reason
        else:
            status = COMPLETED if self.counts[COMPLETED] == len(task.accounts) else FAILED
            missing = len(task.accounts) - self.counts[COMPLETED]
            reason = None if status == COMPLETED else f"{missing} of {len(task.accounts)} accounts not completed"
        self.rec.emit("run_finished", status=status, reason=reason, counts=dict(self.counts))
        self.progress.close()
        return status

    # -- one account -------------------------------------------------------------------------
    async def drive_account(self, browser: Browser, account: Account, first_attempt: int = 0) -> None:
        """Drive one account in a run started elsewhere (a ``warmup worker``): its attempts, numbered
        after ``first_attempt``, and its final ``account_finished``. Ends normally even if cancelled."""
        await self._account(browser, asyncio.Semaphore(1), account, first_attempt)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _account(
        self, browser: Browser, semaphore: asyncio.Semaphore, account: Account, first_attempt: int = 0
    ) -> None:
        st = AccountRun(account, attempt=first_attempt, first_attempt=first_attempt)
        me = asyncio.current_task()
        assert me is not None
        acquired = False
        lock = self.liveness.account_lease(account.id, self.rec.run_id) if self.liveness is not None else None
        try:
            # Registered here, not by the creator: a task cancelled before its first step would never
            # enter this try, and its account would go unrecorded.
            self.waiting[account.id] = me
            if self.stopping:
                self._finish(st, CANCELLED, f"not started: {self.reason or 'the run was stopped'}", retrying=False)
                return
            await semaphore.acquire()
            acquired = True
            if lock is not None and self._try_account_lock(lock) is not None:
                # Another run drives this account: give the slot back while waiting for it.
                semaphore.release()
                acquired = False
                busy = await self._wait_for_account(lock, account.id)
                if busy is not None:
                    self._finish(st, CANCELLED, busy, retrying=False)
                    return
                await semaphore.acquire()
                acquired = True
            self.waiting.pop(account.id, None)
            if self.stopping:
                self._finish(st, CANCELLED, f"not started: {self.reason or 'the run was stopped'}", retrying=False)
                return
            self.running[account.id] = me
            while True:
                st.attempt += 1
                st.step, st.steps_ok, st.steps_failed, st.steps_skipped = None, 0, 0, 0
                st.page_values, st.page_secrets, st.page_scrub = {}, [], None
                st.started = time.monotonic()
                extra = {"worker": self.worker} if self.worker is not None else {}
                self.rec.emit("account_started", account_id=account.id, attempt=st.attempt, **extra)
                status, error = await self._attempt(browser, st)
                tried = st.attempt - st.first_attempt
                retrying = status == FAILED and tried <= self.task.retries and not self.stopping
                self._finish(st, status, error, retrying=retrying)
                if not retrying:
                    return
        except asyncio.CancelledError:
            me.uncancel()
            if st.status is not None:  # already recorded (a cancel that came after the end)
                return
            if st.attempt == st.first_attempt:
                self._finish(st, CANCELLED, f"not started: {self.reason or 'the run was stopped'}", retrying=False)
            else:
                where = f" during {st.step.label}" if st.step is not None else ""
                reason = self.reasons.pop(account.id, None) or self.reason or "cancelled"
                self._finish(st, INTERRUPTED, f"interrupted{where}: {reason}",
                             retrying=account.id in self.handed_on)
        except AccountLockError as exc:
            if st.status is None:
                self._finish(st, FAILED, str(exc), retrying=False)
        except Exception as exc:  # a bug must cost one account, not the run's record
            if st.status is None:
                self._finish(st, FAILED, f"internal error: {describe_error(exc)}", retrying=False)
        finally:
            self.waiting.pop(account.id, None)
            self.running.pop(account.id, None)
            if acquired:
                semaphore.release()
            if lock is not None:
                lock.release()

    @staticmethod
    def _try_account_lock(lock: AccountLease) -> Holder | None:
        try:
            return lock.try_acquire()
        except OSError as exc:
            raise AccountLockError(f"cannot take the account lock {lock.where}: {exc.strerror}") from None

    async def _wait_for_account(self, lock: AccountLease, account_id: str) -> str | None:
        """Wait up to ``account_wait_s`` for another run to let go of an account; None once it is ours.

        Returns the CANCELLED reason if the wait ran out. Cancelled (a stop) like any wait.
        """
        holder = self._try_account_lock(lock)
        if holder is None:
            return None
        self.progress.note(
            f"{account_id}: waiting up to {self.account_wait_s:g} s: it is being driven by {holder.describe()}"
        )
        deadline = time.monotonic() + self.account_wait_s
        while time.monotonic() < deadline:
            await asyncio.sleep(min(ACCOUNT_LOCK_POLL_S, max(0.0, deadline - time.monotonic())))
            latest = self._try_account_lock(lock)
            if latest is None:
                return None
            holder = latest
        return (
            f"not started: account {account_id} is being driven by {holder.describe()} "
            f"(waited {self.account_wait_s:g} s, --account-wait)"
        )

    def _finish(self, st: AccountRun, status: str, error: str | None, *, retrying: bool) -> None:
        fields: dict[str, Any] = {"retrying": retrying}
        if st.attempt > st.first_attempt:
            fields["duration_ms"] = round((time.monotonic() - st.started) * 1000, 3)
            fields["steps_ok"] = st.steps_ok
            fields["steps_failed"] = st.steps_failed
        if st.trace_dropped is not None:
            fields["trace_dropped"], st.trace_dropped = st.trace_dropped, None
        error = self._hide(st, error)
        self.rec.emit(
            "account_finished", account_id=st.account.id, status=status, error=error, attempt=st.attempt, **fields
        )
        if retrying:
            why = self.rec.scrub(error or "")
            self.progress.note(f"{st.account.id}: attempt {st.attempt} failed, retrying ({why})")
            return
        st.status = status
        self.counts[status] += 1
        self.final_status[st.account.id] = status
        detail = error or ""
        if status == COMPLETED:
            optional = f" ({st.steps_failed} optional failed)" if st.steps_failed else ""  # COMPLETED: all optional
            skipped = f" ({st.steps_skipped} skipped)" if st.steps_skipped else ""
            detail = (f"{st.steps_ok}/{len(self.task.steps)} steps{optional}{skipped}, "
                      f"{time.monotonic() - st.started:.1f} s")
        self.progress.account_done(st.account.id, status, self.rec.scrub(detail))

    async def _attempt(self, browser: Browser, st: AccountRun) -> tuple[str, str | None]:
        """One attempt at an account's steps; returns (status, error). Raises CancelledError if cut off."""
        account = st.account
        context: BrowserContext | None = None
        page: Page | None = None
        failure: str | None = None
        state_path = self.task.storage_state_path(account)
        tracer = Tracer(self.task.trace, self.secrets)
        try:
            try:
                async with asyncio.timeout(self.task.account_timeout_s):
                    context, failure = await self._new_context(browser, account, state_path)
                    if context is not None:
                        await tracer.start(context)
                        page = await context.new_page()
                        if self.task.script is not None:
                            failure = await self._run_script(st, page)
                        else:
                            failure = await self._steps(st, page)
            except TimeoutError:
                failure = f"account timeout: {self.task.account_timeout_s:g} s reached"
                if st.step is not None:
                    failure += f" during {st.step.label}"
                    duration_ms = (time.perf_counter() - st.step_started) * 1000
                    self._step_event(st, st.step, ok=False, duration_ms=duration_ms, error=failure, url=_url(page))
                    st.steps_failed += 1
            if failure is None and context is not None and state_path is not None and not self._saves_midway:
                failure = await self._save_state(context, state_path)
            if failure is not None and page is not None:
                await self._screenshot(st, page, f"failure-{st.attempt}", "failure")
            if context is not None:
                await self._finish_trace(st, tracer, context, failed=failure is not None)
            return (FAILED, failure) if failure is not None else (COMPLETED, None)
        finally:
            if context is not None:
                # Closed in the background: the account's slot is free for the next one at once.
                closing = asyncio.create_task(self._close_context(context))
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)

    async def _finish_trace(self, st: AccountRun, tracer: Tracer, context: BrowserContext, *, failed: bool) -> None:
        """Stop the attempt's trace; keep it as ``trace-<attempt>.zip`` when the tracer gives one.

        A trace that should have been kept but was not (a secret still found after redaction, a
        browser gone) is a note to the user and ``trace_dropped`` in the attempt's ``account_finished``.
        """
        if st.page_secrets:  # values read from the page that are secrets: kept out of the trace too
            tracer.secrets = [*tracer.secrets, *st.page_secrets]
        outcome = await tracer.stop(context, failed=failed)
        if outcome.data is not None:
            self._save_artifact(st, f"trace-{st.attempt}", "trace", outcome.data, suffix=".zip")
        if outcome.note is not None:
            if outcome.data is None:
                st.trace_dropped = outcome.note
            self.progress.note(f"{st.account.id}: {self.rec.scrub(outcome.note)}")

    async def _run_script(self, st: AccountRun, page: Page) -> str | None:
        """Run a Python-scripted task's function on the page; the attempt's failure, or None.

        Each ``step(...)`` block is recorded as it ends (``warmup.runner.script``); a required one
        that failed fails the account even if the script caught the exception.
        """
        assert self.task.script is not None

        def started(step: ScriptStep) -> None:
            st.step, st.step_started = step, time.perf_counter()

        def finished(step: ScriptStep, ok: bool, duration_ms: float, error: str | None) -> None:
            if ok:
                st.steps_ok += 1
            else:
                st.steps_failed += 1
            self._step_event(st, step, ok=ok, duration_ms=duration_ms, error=error, url=None if ok else _url(page))
            st.step = None

        steps = ScriptSteps(page, default_timeout_ms=self.task.timeout_ms, on_start=started, on_finish=finished)
        try:
            function = resolve_script(self.task.script, self.task.path.parent, f"task {self.task.id}")
            await function(page, script_account(self.task, st.account), steps)
        except ScriptStepFailed:
            pass
        except WarmupError as exc:
            return str(exc)
        except (Exception, SystemExit) as exc:  # raised outside any step block (sys.exit too): the script failed
            return f"script{_script_line(exc)}: {describe_error(exc)}"
        return str(steps.failed) if steps.failed is not None else None

    async def _close_context(self, context: BrowserContext) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await context.close()
        except (PlaywrightError, TimeoutError):
            pass

    async def _new_context(
        self, browser: Browser, account: Account, state_path: Path | None
    ) -> tuple[BrowserContext | None, str | None]:
        state: dict[str, Any] | None = None
        if state_path is not None and state_path.exists():
            try:
                state = orjson.loads(state_path.read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                return None, f"cannot load storage state {state_path}: {describe_error(exc)}"
        try:
            return await browser.new_context(**context_options(self.task, account, state)), None
        except PlaywrightError as exc:
            return None, f"cannot open a browser context: {describe_error(exc)}"

    async def _save_state(self, context: BrowserContext, path: Path) -> str | None:
        """Write the context's cookies and storage to ``path`` (mode 0600, atomically)."""
        try:
            state = await context.storage_state()
            make_private_dir(path.parent)  # 0700 whatever the umask
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(orjson.dumps(state, option=orjson.OPT_INDENT_2))
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except (OSError, PlaywrightError) as exc:
            return f"cannot save storage state to {path}: {describe_error(exc)}"
        return None

    async def _steps(self, st: AccountRun, page: Page) -> str | None:
        """Each step in order; the attempt's failure, or None.

        A group's condition is checked once, when it starts: when it says skip, each of its steps is
        recorded skipped (one ``step_finished`` per step: indexes stay unique and every step shows).
        A group condition that cannot be checked fails the group's first step (an optional one lets
        the attempt go on, the group's other steps recorded skipped: they never run unchecked).
        """
        steps = self.task.steps
        index = 0
        while index < len(steps):
            step = st.step = steps[index]
            group = step.group
            if group is not None and index == group.first:
                st.step_started = time.perf_counter()
                skip, error = await self._skip_reason(st, page, group.when, group.unless, step)
                if error is not None:
                    error = f"group '{group.name}': {error}"
                    self._record_failed(st, page, step, error)
                    if not step.optional:
                        return f"{step.label}: {error}"
                    for inner in steps[index + 1 : index + group.count]:  # never run unchecked
                        self._record_skipped(st, inner, 0.0)
                    index += group.count
                    continue
                if skip:
                    took_ms = (time.perf_counter() - st.step_started) * 1000
                    for inner in steps[index : index + group.count]:
                        self._record_skipped(st, inner, took_ms if inner is step else 0.0)
                    index += group.count
                    continue
            ok, error = await self._step(st, page, step)
            if not ok and not step.optional:
                return f"{step.label}: {error}"
            index += 1
        st.step = None
        return None

    async def _skip_reason(
        self, st: AccountRun, page: Page, when: Condition | None, unless: Condition | None, step: Step
    ) -> tuple[bool, str | None]:
        """(skip, error): whether ``when``/``unless`` say to skip, checked now (never waited for)."""
        account = st.account
        try:
            async with asyncio.timeout((step.timeout_ms + SAFETY_MARGIN_MS) / 1000):
                for condition, wanted in ((when, True), (unless, False)):
                    if condition is None:
                        continue
                    value = self.task.render(condition.value, account, page=st.page_values)
                    if await condition_holds(page, condition, value, self.task.base_url_for(account)) != wanted:
                        return True, None
        except TimeoutError:
            return False, f"the condition took more than {step.timeout_ms} ms"
        except UsageError as exc:
            return False, str(exc)
        except Exception as exc:  # a selector the browser refuses, a closed page
            return False, f"condition: {describe_error(exc)}"
        return False, None

    def _record_skipped(self, st: AccountRun, step: Step, duration_ms: float) -> None:
        """A step its condition skipped: ``ok`` (nothing went wrong) and ``skipped``; counted in neither."""
        st.steps_skipped += 1
        self._step_event(st, step, ok=True, duration_ms=duration_ms, error=None, url=None, skipped=True)

    def _record_failed(self, st: AccountRun, page: Page, step: Step, error: str) -> None:
        st.steps_failed += 1
        duration_ms = (time.perf_counter() - st.step_started) * 1000
        self._step_event(st, step, ok=False, duration_ms=duration_ms, error=error, url=_url(page))

    async def _step(self, st: AccountRun, page: Page, step: Step) -> tuple[bool, str | None]:
        account = st.account
        started = st.step_started = time.perf_counter()
        if step.when is not None or step.unless is not None:
            skip, problem = await self._skip_reason(st, page, step.when, step.unless, step)
            if problem is not None:
                self._record_failed(st, page, step, problem)
                return False, problem
            if skip:
                self._record_skipped(st, step, (time.perf_counter() - started) * 1000)
                return True, None
        error: str | None = None
        png: bytes | None = None
        extracted: dict[str, str] | None = None
        try:
            values = {key: self.task.step_value(step, key, account, st.page_values) for key in step.args}
            values[BASE_URL_KEY] = self.task.base_url_for(account)  # URL patterns resolve against it
            budget_ms = step.timeout_ms + inherent_ms(step.action, values) + SAFETY_MARGIN_MS
            async with asyncio.timeout(budget_ms / 1000):
                if step.fail_if is not None:
                    fail_if = self.task.render(step.fail_if, account, page=st.page_values)  # (before the coroutine)
                    result = await with_fail_if(page, fail_if, self._action(st, page, step, values), step.timeout_ms)
                else:
                    result = await self._action(st, page, step, values)
                png = result.png
                if step.extract is not None:
                    extracted = await self._extract(st, page, step, result.value)
        except TimeoutError:
            error = f"timed out after {step.timeout_ms} ms"
        except UsageError as exc:  # a ${page.NAME} whose step was skipped or failed
            error = str(exc)
        except Exception as exc:  # a step's failure is recorded, never a crash of the run
            error = describe_error(exc)
        duration_ms = (time.perf_counter() - started) * 1000
        relative: str | None = None
        if png is not None:  # a picture taken but not kept (never overwritten) fails the step
            name = self.task.render(step.args[""], account)
            if st.attempt > 1:
                name += f"-attempt{st.attempt}"
            relative, error = self._write_artifact(st, name, png)
        ok = error is None
        if ok:
            st.steps_ok += 1
            if extracted is not None:
                st.page_values.update(extracted)
        else:
            st.steps_failed += 1
        self._step_event(st, step, ok=ok, duration_ms=duration_ms, error=error, url=None if ok else _url(page),
                         extracted=extracted if ok else None)
        if ok and relative is not None and png is not None:
            self._artifact_event(st, relative, "screenshot", png)
        return ok, error

    async def _action(self, st: AccountRun, page: Page, step: Step, values: dict[str, Any]) -> ActionResult:
        """The step's action; ``save_state`` and ``extract`` alone are the engine's own."""
        if step.action == EXTRACT_ONLY:
            return ActionResult()
        if step.action == SAVE_STATE:
            state_path = self.task.storage_state_path(st.account)
            assert state_path is not None  # (the loader refuses save_state without a storage_state)
            problem = await self._save_state(page.context, state_path)
            if problem is not None:
                raise StepFailed(problem)
            return ActionResult()
        return await perform(page, step.action, values, step.timeout_ms, base_dir=self.task.path.parent)

    async def _extract(self, st: AccountRun, page: Page, step: Step, result: Any) -> dict[str, str]:
        """The step's extracted value as ``{name: value}``."""
        extract = step.extract
        assert extract is not None
        selector = None
        if extract.selector is not None:
            selector = self.task.render(extract.selector, st.account, page=st.page_values)
        value = await extract_value(page, extract, selector, result, step.timeout_ms)
        if value and (SECRET_VAR.search(extract.name) or await _holds_a_cookie(page, value)):
            st.page_secrets.append(value)
            st.page_scrub = Scrubber(st.page_secrets)
        return {extract.name: value}

    @staticmethod
    def _hide(st: AccountRun, text: str | None) -> str | None:
        """``text`` without the attempt's secret extracted values (the recorder hides the task's own)."""
        if text is None or st.page_scrub is None:
            return text
        return st.page_scrub(text)

    def _step_event(
        self, st: AccountRun, step: Step, *, ok: bool, duration_ms: float, error: str | None, url: str | None,
        skipped: bool = False, extracted: dict[str, str] | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "index": step.index,
            "action": step.action,
            "ok": ok,
            "duration_ms": round(duration_ms, 3),
            "error": self._hide(st, error),
            "attempt": st.attempt,
            "optional": step.optional,
        }
        if not ok:
            fields["url"] = self._hide(st, url)
        if isinstance(step, ScriptStep):
            fields["name"] = step.args[""]
        if skipped:
            fields["skipped"] = True
        if extracted:
            fields["extracted"] = {  # a value holding a secret read earlier (a link with the token) is hidden too
                name: REDACTED if value in st.page_secrets else _cut(self._hide(st, value) or "")
                for name, value in extracted.items()
            }
        self.rec.emit("step_finished", account_id=st.account.id, **fields)

    async def _screenshot(self, st: AccountRun, page: Page, name: str, kind: str) -> None:
        """The page as it failed, full size, and a half-size thumbnail for reports.

        Reports inline failure screenshots by the dozen; a thumbnail is a third of the bytes (24 KB
        against 80 KB for a text-heavy 1280x720 page) and the full-size file stays beside it.
        """
        try:
            async with asyncio.timeout(SCREENSHOT_TIMEOUT_MS / 1000 + 1):
                png = await page.screenshot(timeout=SCREENSHOT_TIMEOUT_MS)
        except (PlaywrightError, TimeoutError):
            return  # a page that cannot be photographed (closed, crashed) just has no screenshot
        self._save_artifact(st, name, kind, png)
        thumbnail = await self._thumbnail(page)
        if thumbnail is not None:
            self._save_artifact(st, f"{name}.thumb", "thumbnail", thumbnail)

    async def _thumbnail(self, page: Page) -> bytes | None:
        """The viewport at half scale, through Chromium's DevTools protocol (Playwright has no scale)."""
        try:
            async with asyncio.timeout(SCREENSHOT_TIMEOUT_MS / 1000 + 1):
                width, height = await page.evaluate("[innerWidth, innerHeight]")
                cdp = await page.context.new_cdp_session(page)
                try:
                    shot = await cdp.send(
                        "Page.captureScreenshot",
                        {"format": "png", "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 0.5}},
                    )
                finally:
                    await cdp.detach()
        except (PlaywrightError, TimeoutError, ValueError, TypeError):
            return None
        return base64.b64decode(shot["data"])

    def _save_artifact(self, st: AccountRun, name: str, kind: str, png: bytes, *, suffix: str = ".png") -> None:
        """Write and record one of the runner's own files; a file that cannot be written is a note."""
        relative, error = self._write_artifact(st, name, png, suffix=suffix)
        if error is not None:
            self.progress.note(f"{st.account.id}: {self.rec.scrub(error)}")
            return
        self._artifact_event(st, relative, kind, png)

    def _write_artifact(self, st: AccountRun, name: str, png: bytes, *, suffix: str = ".png") -> tuple[str, str | None]:
        """Create ``RUN/ACCOUNT/NAME.png`` (or another suffix); returns its relative path and None, or an error.

        Invariant: a file is never overwritten (``O_EXCL``). Task validation already keeps one
        account's names apart (reserved ``failure-*``/``trace-*``/``*-attemptN``, rendered names
        unique); this is the last net, so two steps can never keep only one picture silently.
        """
        relative = f"{self.rec.run_id}/{st.account.id}/{name}{suffix}"
        path = self.artifacts_dir / relative
        try:
            make_private_dir(path.parent)  # 0700 whatever the umask
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(png)
            except OSError:
                path.unlink(missing_ok=True)  # ours (O_EXCL): no half picture left behind
                raise
        except FileExistsError:
            return relative, f"cannot save {relative}: a file of that name already exists (not overwritten)"
        except OSError as exc:
            return relative, f"cannot save {relative}: {exc.strerror}"
        return relative, None

    def _artifact_event(self, st: AccountRun, relative: str, kind: str, png: bytes) -> None:
        self.rec.emit(
            "artifact_saved",
            account_id=st.account.id,
            path=relative,
            sha256=hashlib.sha256(png).hexdigest(),
            bytes=len(png),
            kind=kind,
            attempt=st.attempt,
        )


def _script_line(exc: BaseException) -> str:
    """`` (warm.py line 12)``: the last place in a file outside warmup and Playwright that raised."""
    where = ""
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if "/warmup/" not in filename and "/playwright/" not in filename and "/asyncio/" not in filename:
            where = f" ({Path(filename).name} line {tb.tb_lineno})"
        tb = tb.tb_next
    return where


async def _holds_a_cookie(page: Page, value: str) -> bool:
    """Whether ``value`` holds the value of one of the context's cookies (4 characters or more)."""
    try:
        cookies = await page.context.cookies()
    except PlaywrightError:
        return False
    return any(len(c.get("value", "")) >= SHORT_SECRET and c["value"] in value for c in cookies)


def _cut(value: str) -> str:
    """An extracted value as the event records it: at most ``MAX_EXTRACTED_CHARS`` (later steps get it whole)."""
    return value if len(value) <= MAX_EXTRACTED_CHARS else value[: MAX_EXTRACTED_CHARS - 1] + "…"


def _url(page: Page | None) -> str | None:
    if page is None:
        return None
    try:
        return page.url
    except PlaywrightError:
        return None
