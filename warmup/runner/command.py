"""``warmup run``: load the task, find a browser, run the accounts, report; returns the exit code.

Order matters: the task file and the browser are checked before anything is started or appended,
so bad input (exit 2) or a missing browser (exit 1) leaves the log untouched. Then the log is
opened, dead runs of that log are closed (``warmup.recover``, one line on stderr each), the run
lock is taken (before ``run_started``: see ``warmup.locks``), the projector child started
(``--project``), and the asyncio runner drives the accounts. The run lock is removed only once
``run_finished`` is on disk; if it could not be written (a full disk) the lock stays, unheld, and
the next ``warmup run`` or ``warmup recover`` closes the run from the log.

``--resume RUN_ID`` / ``--retry-failed RUN_ID`` take the task from that run's record instead of a
file (``warmup.resume``) and run only the accounts that did not complete. RUN_ID may be a unique
prefix or ``last``, resolved from the log (``warmup.run_ids``) before anything is appended. Given
with a task file, ``last`` is that task's latest run, and another task's run is refused; the task
that runs is still the recorded one. ``--account ID`` (repeatable) keeps only those accounts (with
a resume: those of them left to do).

SIGXFSZ is ignored: a file-size limit (RLIMIT_FSIZE) then fails a write with EFBIG, which the
writer turns into a clean ``LogWriteError``, instead of killing the runner mid-line.

Exit codes: 0 every account completed, 1 some account failed (or the log could not be written, or
the browser would not start), 2 bad input, 130 interrupted (SIGINT/SIGTERM).

stdout gets one summary line per run; progress and problems go to stderr.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import replace
from pathlib import Path
from types import FrameType

from warmup.browser import find_browser
from warmup.errors import UsageError, WarmupError
from warmup.events.envelope import new_run_id
from warmup.events.writer import LogWriteError
from warmup.log import Log, as_log, is_stream_url, open_log_backend
from warmup.recover import recover_dead_runs
from warmup.resume import pick_accounts, plan_resume
from warmup.run_ids import resolve_from_log
from warmup.runner.engine import COMPLETED, DEFAULT_ACCOUNT_WAIT_S, INTERRUPTED, Runner
from warmup.runner.progress import make_progress
from warmup.runner.projector_child import ProjectorChild, check_projections, projection_args
from warmup.runner.recorder import Recorder
from warmup.runs.liveness import liveness_for
from warmup.runs.origin import FROM_CLI, RUN_ID_SHAPE, RunOrigin
from warmup.tasks import SAFE_ID, load_task
from warmup.times import seconds_from_env

DEFAULT_GRACE_S = 3.0
GRACE_ENV = "WARMUP_GRACE_S"  # seconds running accounts get after Ctrl-C/SIGTERM


def grace_seconds() -> float:
    return seconds_from_env(GRACE_ENV, DEFAULT_GRACE_S, minimum=0)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _say(message: str) -> None:
    print(f"warmup: {message}", file=sys.stderr, flush=True)


def run_command(
    task_file: Path | None,
    *,
    log_path: Path | Log,
    db_path: Path,
    concurrency: int | None,
    artifacts: Path,
    browser_path: Path | None,
    headed: bool,
    with_projector: bool,
    fsync: str,
    resume: str | None = None,
    retry_failed: str | None = None,
    account_wait_s: float = DEFAULT_ACCOUNT_WAIT_S,
    projection_specs: tuple[str, ...] = (),
    targets: tuple[str, ...] = (),
    accounts: tuple[str, ...] = (),
    workers: bool = False,
    replicas: int | None = None,
    run_id: str | None = None,
    origin: RunOrigin = FROM_CLI,
) -> int:
    """``warmup run``: check everything, then drive the accounts and append events; the exit code.

    ``accounts`` (``--account``, repeatable) keeps only those accounts, in the task's order. With
    ``--resume``/``--retry-failed`` and no task file, the task recorded in the run runs again. With
    a task file, the file as it is now runs, for the accounts the run left (so a fixed selector is
    used): ``last`` is then that task's latest run, and another task's run id is refused.
    """
    resume_id = resume or retry_failed
    if run_id is not None and not RUN_ID_SHAPE.match(run_id):
        raise UsageError(f"--run-id {run_id[:80]!r} is not a new run id's shape (like 20261129T070000-1a2b3c)")
    option = "--resume" if resume else "--retry-failed"
    if resume and retry_failed:
        raise UsageError("give --resume or --retry-failed, not both")
    if resume_id is not None and not SAFE_ID.match(resume_id):
        raise UsageError(
            f"{resume_id[:80]!r} is not a run id (they look like 20261129T070000-1a2b3c; see `warmup runs`)"
        )
    if resume_id is None and task_file is None:
        raise UsageError("missing TASK_FILE (or --resume RUN_ID / --retry-failed RUN_ID)")
    if account_wait_s < 0:
        raise UsageError(f"--account-wait must be 0 or more seconds, not {account_wait_s:g}")
    task = load_task(task_file) if task_file is not None else None
    if resume_id is not None:  # a prefix or `last` names one run of the log; before anything is appended
        try:  # with a task file, `last` is that task's latest run, and another task's run is refused
            resume_id = resolve_from_log(as_log(log_path), resume_id, task_id=task.id if task is not None else None)
        except UsageError as exc:
            raise UsageError(f"{option} {resume_id}: {exc}") from None
    elif task is not None and accounts:
        chosen = set(pick_accounts([a.id for a in task.accounts], accounts, f"task file {task_file}"))
        task = replace(task, accounts=[a for a in task.accounts if a.id in chosen])
    child_args = projection_args(projection_specs, targets)
    if child_args and not with_projector:
        raise UsageError("--projection and --target need the projector beside the run: leave out --no-project")
    if child_args:
        refused = check_projections(child_args)
        if refused is not None:
            raise UsageError(refused)
    if workers and not is_stream_url(log_path):
        raise UsageError("--workers hands accounts out through a stream: give --log nats://HOST:PORT/STREAM")
    if replicas is not None and not is_stream_url(log_path):
        raise UsageError("--replicas is for a stream log (--log nats://HOST:PORT/STREAM)")
    # The coordinator of --workers drives no browser: the workers need one, on their hosts.
    executable = "" if workers else find_browser(browser_path, headless=not headed)
    grace_s = grace_seconds()
    if concurrency is not None and concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, not {concurrency}")
    # A file-size limit must fail the write (EFBIG, a clean LogWriteError), not kill us mid-line.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    log = open_log_backend(log_path, replicas=replicas) if is_stream_url(log_path) else as_log(log_path)
    try:
        writer = log.appender(fsync=fsync)
    except LogWriteError as exc:
        raise WarmupError(exc.strerror or str(exc), exit_code=1) from None
    try:
        recover_dead_runs(log, writer=writer, on_result=lambda r: _say(r.describe()))
        if resume_id is not None:
            plan = plan_resume(log, resume_id, failed_only=retry_failed is not None, only=accounts)
            if plan.task is None:
                what = "failed" if retry_failed else "failed, interrupted or cancelled"
                chosen = " among the --account ones" if accounts else ""
                print(f"run {resume_id}: nothing to resume: no {what} account{chosen}", flush=True)
                writer.close()
                return 0
            if task is None:
                task = plan.task
            else:  # the file as it is now (a fixed selector, say), for the accounts the run left
                left = [a.id for a in plan.task.accounts]
                gone = [a for a in left if a not in {b.id for b in task.accounts}]
                if gone:
                    _say(f"note: {len(gone)} account(s) of run {resume_id} are no longer in {task_file} "
                         f"and are left out: {', '.join(gone[:5])}{' ...' if len(gone) > 5 else ''}")
                task = replace(task, accounts=[a for a in task.accounts if a.id in set(left)])
                if not task.accounts:
                    print(f"run {resume_id}: nothing to resume: its accounts are no longer in {task_file}",
                          flush=True)
                    writer.close()
                    return 0
    except LogWriteError as exc:
        writer.close()
        raise WarmupError(exc.strerror or str(exc), exit_code=1) from None
    except OSError as exc:  # the leases could not be read (a key-value bucket out of reach: LeaseError)
        writer.close()
        raise WarmupError(exc.strerror or str(exc), exit_code=1) from None
    except BaseException:
        writer.close()
        raise
    assert task is not None
    effective = concurrency or task.concurrency
    short = task.short_secret_warning()
    if short is not None:
        _say(short)

    projector = ProjectorChild(log.name, db_path, child_args) if with_projector else None
    scrub = task.scrubber()
    recorder = Recorder(writer, run_id or new_run_id(), scrub, task_id=task.id)
    liveness = liveness_for(log)
    run_lock = liveness.run_lease(recorder.run_id)
    try:
        run_lock.acquire()
    except OSError as exc:
        writer.close()
        raise WarmupError(f"cannot create the run lock {run_lock.where}: {exc.strerror}", exit_code=1) from None
    runner = Runner(
        task,
        recorder,
        artifacts_dir=artifacts,
        browser_path=executable,
        headless=not headed,
        concurrency=effective,
        grace_s=grace_s,
        progress=make_progress(),
        liveness=liveness,
        account_wait_s=account_wait_s,
        resumed_from=resume_id,
        origin=origin,
    )
    # Outside the event loop (which handles SIGINT/SIGTERM itself while the accounts run), SIGTERM
    # raises KeyboardInterrupt like Ctrl-C, so the projector child is never left following forever.
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            if projector is not None:
                projector.start()
            if workers:
                from warmup.runs.kv import KvLiveness
                from warmup.workers.coordinator import Coordinator

                assert isinstance(liveness, KvLiveness)
                coordinator = Coordinator(task, recorder, log, liveness.bucket, make_progress(), grace_s=grace_s,
                                          resumed_from=resume_id, origin=origin)  # type: ignore[arg-type]
                result = coordinator.run()
            else:
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
            # Keep the (unheld) lock when run_started is on disk without run_finished: a dead run.
            run_lock.release(remove=recorder.finished or not recorder.started)
        problem = projector.stop() if projector is not None else None
    finally:
        signal.signal(signal.SIGTERM, previous_term)
    counts = ", ".join(f"{n} {s.lower()}" for s, n in result.counts.items() if n)
    print(
        f"run {result.run_id}: {result.status}: {counts} of {len(task.accounts)} accounts "
        f"in {result.elapsed_s:.1f} s (log: {log.name})",
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
