"""``warmup run --resume RUN_ID`` / ``--retry-failed RUN_ID``: which accounts to run again, with which task.

The task comes from the old run's ``run_started.task`` record (secrets unresolved), never from a
file, so a resume works when the task file changed or is gone. ``${env.*}`` references are
resolved again from the environment of the resuming process, and checked before anything runs.

- ``--resume``: the accounts whose final status in that run is FAILED, INTERRUPTED or CANCELLED.
- ``--retry-failed``: FAILED only.

Refusals (exit 2, one line): an unknown run id; a run already resumed by another (resume that
one: it holds what is left, and two resumes of one run would drive its accounts twice); a run
whose runner is still alive (its lock is held); a run with no ``run_finished`` that could not be
recovered (started on another host); a run with no task record (written by an older warmup); an
account whose credential-named literal variable was recorded as ``***`` (it was never in the log:
put it in ``${env.*}``).
A run with nothing left to do is not an error: the caller says so and exits 0.

``--account ID`` (``only``) narrows the accounts to those ids: with a resume, the intersection with
what is left to do; an id the run never had is refused (``pick_accounts``, shared with a task file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from warmup.errors import UsageError, no_log, no_run
from warmup.log import LogMissing, as_log
from warmup.recover import RunState, lock_is_held, scan_run
from warmup.tasks import Task, task_from_record

RESUMABLE = ("FAILED", "INTERRUPTED", "CANCELLED")
SHOWN_KNOWN = 5  # known account ids an unknown --account lists


@dataclass
class ResumePlan:
    run_id: str
    state: RunState
    account_ids: list[str]  # in the old run's order
    task: Task | None  # None when there is nothing to run


def pick_accounts(known: Sequence[str], only: Sequence[str], where: str) -> list[str]:
    """The ids of ``known`` (in its order) that ``only`` names; all of them when ``only`` is empty.

    An id of ``only`` not in ``known`` is refused (``UsageError``, one line naming it and a few known ids).
    """
    if not only:
        return list(known)
    unknown = [a for a in dict.fromkeys(only) if a not in known]
    if unknown:
        shown = ", ".join(known[:SHOWN_KNOWN]) + (f" and {len(known) - SHOWN_KNOWN} more"
                                                  if len(known) > SHOWN_KNOWN else "")
        raise UsageError(f"--account {unknown[0][:80]!r}: no such account in {where} (its accounts: {shown})")
    wanted = set(only)
    return [a for a in known if a in wanted]


def plan_resume(log_path: Path, run_id: str, *, failed_only: bool, only: Sequence[str] = ()) -> ResumePlan:
    """What a resume of ``run_id`` would run. Call after dead runs were recovered.

    ``run_id`` is a whole id: the caller resolves a prefix or ``last`` first (``warmup.run_ids``).
    ``only`` (``--account``, may be empty: every account) keeps those of the accounts left to do.
    """
    option = "--retry-failed" if failed_only else "--resume"
    log = as_log(log_path)
    try:
        log.reader().close()  # there is a log, and it is one (a FIFO is refused, never read)
    except LogMissing:
        raise UsageError(f"{option} {run_id}: {no_log(log.name)}") from None
    holder = lock_is_held(log_path, run_id)
    if holder is not None:
        raise UsageError(
            f"{option} {run_id}: that run is still going ({holder.describe()}); wait for it or stop it first"
        )
    state = scan_run(log, run_id)
    if state.started is None:
        raise UsageError(f"{option} {run_id}: {no_run(run_id, log_path)}")
    if state.resumed_by:
        later = state.resumed_by[-1]
        raise UsageError(
            f"{option} {run_id}: run {later} already resumed it; resume {later} instead "
            "(it holds what is still left to do)"
        )
    if state.finished is None:
        raise UsageError(
            f"{option} {run_id}: the run has no run_finished and its runner is not known to be dead here "
            f"(started on host {state.started.host}, pid {state.started.pid}); run 'warmup recover --force' "
            "once you know it is gone"
        )
    wanted = ("FAILED",) if failed_only else RESUMABLE
    chosen = set(pick_accounts(list(state.started.accounts), only, f"run {run_id}"))
    account_ids = [a for a, s in state.accounts.items() if s.status in wanted and a in chosen]
    if not account_ids:
        return ResumePlan(run_id, state, [], None)
    record = state.started.task
    if not record:
        raise UsageError(
            f"{option} {run_id}: the run's task definition is not in the log (an older warmup wrote it); "
            "run its task file again instead"
        )
    task = task_from_record(record, account_ids, where=f"{option} {run_id}: the recorded task")
    return ResumePlan(run_id, state, account_ids, task)
