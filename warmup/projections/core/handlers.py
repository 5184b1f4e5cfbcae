"""Event handlers: how each event type changes the projected rows.

Each handler first checks everything it needs (raising ``Reject`` with a reason) and only then
changes rows, so a rejected event leaves no trace but its ``rejected_events`` row. Every value
written comes from the event itself (times are the events' ``ts``), never from the projector's
clock or from how the log was cut into batches: the tables are a pure function of the log.

Duplicates: event ids are unique by contract, and an event whose id was already applied to its run
is rejected ("duplicate event id"), whatever its type, before any other check: a copied line is
applied once, however many times it appears. A finished run takes no more events at all (the
runner and ``recover`` write ``run_finished`` last), so only the runs in flight need their ids:
they are kept in ``run_event_ids`` (loaded with the run; appended to with it: a batch writes only
the ids it applied, in fixed chunks, see ``rows.IDS_PER_CHUNK``; deleted when it finishes), and the
check holds across batches and processes exactly as in one replay. The handlers only add an id to
the run's dict (``seen[event_id] = ra``); ``RowCache.flush`` finds the new ones by count. An id is
checked within its run (an event belongs to exactly one run): tracking every id ever applied
would cost an index of all ids, about as much as a replay itself.

What changed: a handler marks each row it changes, once all of the event's checks passed, and
``RowCache.flush`` writes only the marked rows (see ``rows``): a ``run_accounts`` row by mapping the
event's id to it in its run's ids (``seen[event_id] = ra``: every account event that applies,
account_started, step_finished, artifact_saved, account_finished; the store the duplicate check
needs anyway), a new run's rows through ``put_run``, a run's row by adding its id to
``rows.dirty_runs`` (run_started, account_finished when final, run_finished: nothing else changes
it), accounts and tasks through ``_account_row``, ``put_task`` and ``touch_task``. A change left
unmarked would be lost at the next commit (the row in memory right, the table wrong), so every
assignment to a row's field below has its mark.

Statuses are upper case. A run_accounts row is PENDING from ``run_started`` until its account
starts, RUNNING through its attempts (a failed attempt that will be retried keeps it RUNNING), and
then final: COMPLETED, FAILED, CANCELLED or INTERRUPTED. A run is COMPLETED only when every one of
its accounts completed (the original app marked a task COMPLETED even when all accounts failed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from warmup.events.envelope import (
    ACCOUNT_FINAL_STATUSES,
    DURATION_SLACK_MS,
    RUN_FINAL_STATUSES,
    AccountEvent,
    AccountFinished,
    AccountStarted,
    ArtifactSaved,
    EventBase,
    RunFinished,
    RunStarted,
    StepFinished,
    duration_problem,
    is_timestamp,
)
from warmup.projections.core.rows import CLOSED, Row, RowCache

_COUNT_COLUMN = {
    "COMPLETED": "accounts_completed",
    "FAILED": "accounts_failed",
    "CANCELLED": "accounts_cancelled",
    "INTERRUPTED": "accounts_interrupted",
}


class Reject(Exception):
    """The event is well-formed but cannot apply (unknown run, duplicate, bad field); says why."""


def _check_ts(event: EventBase) -> None:
    """Reject an event whose time is not in the log's format, before it is stored anywhere.

    (The decoder only checks its length: see ``envelope.Timestamp``.)
    """
    if not is_timestamp(event.ts):
        what = type(event).__struct_config__.tag
        raise Reject(f"{what}: ts {event.ts!r} is not a time like 2026-11-29T07:00:00.123456Z")


class Handlers:
    """Applies events to a RowCache: ``by_type[type(event)](event)``; raises Reject for one that cannot apply."""

    def __init__(self, rows: RowCache) -> None:
        self.rows = rows
        self._runs = rows.runs
        self._run_accounts = rows.run_accounts
        self._accounts = rows.accounts
        self._dirty_accounts = rows.dirty_accounts
        self._dirty_runs = rows.dirty_runs
        self._run_ids = rows.run_ids
        # Keyed by the event's class: ``by_type[type(event)](event)`` is the projector's dispatch.
        self.by_type: dict[type, Callable[[Any], None]] = {
            RunStarted: self.run_started,
            AccountStarted: self.account_started,
            StepFinished: self.step_finished,
            ArtifactSaved: self.artifact_saved,
            AccountFinished: self.account_finished,
            RunFinished: self.run_finished,
        }

    # -- helpers -------------------------------------------------------------------------------
    def _unseen(self, event: EventBase) -> None:
        """Reject the event if its id was already applied to its (known) run, or if the run has
        finished (a finished run takes no more events)."""
        run_id = event.run_id  # type: ignore[attr-defined]
        seen = self._run_ids[run_id]
        if event.id in seen:
            tag = type(event).__struct_config__.tag
            if seen is CLOSED:
                raise Reject(f"{tag}: run {run_id!r} already finished ({self._runs[run_id]['status']})")  # type: ignore[index]
            raise Reject(f"{tag}: duplicate event id {event.id!r} (an event with this id was already applied)")

    def _run_account(self, event: AccountEvent) -> tuple[Row, Row]:
        """The run and run_accounts rows an account event applies to (the caller marks what it changes).

        Rejects an event of an unknown run, of an account not in the run, or already applied.
        """
        run_id, account_id = event.run_id, event.account_id
        run = self._runs.get(run_id) or self.rows.run(run_id)  # the dict first: this is the hot path
        # (a run in memory has its run_accounts and ids in memory: RowCache.run loads them together)
        if run is None:
            raise Reject(f"{type(event).__struct_config__.tag}: unknown run {run_id!r} (no run_started before it)")
        self._unseen(event)
        ra = self._run_accounts[run_id].get(account_id)
        if ra is None:
            raise Reject(f"{type(event).__struct_config__.tag}: account {account_id!r} is not part of run {run_id!r}")
        return run, ra

    def _account_row(self, account_id: str, ts: str) -> Row:
        """The account's row, created on first sight, marked as changing."""
        row = self._accounts.get(account_id)
        if row is not None:
            self._dirty_accounts.add(account_id)
            return row
        row = self.rows.account(account_id)
        if row is None:
            row = {
                "id": account_id,
                "warmed_at": None,
                "warm_count": 0,
                "fail_count": 0,
                "runs_count": 0,
                "last_run_id": None,
                "last_status": None,
                "last_error": None,
                "first_seen_at": ts,
                "updated_at": ts,
            }
        self.rows.put_account(row)
        return row

    # -- handlers ------------------------------------------------------------------------------
    def run_started(self, event: RunStarted) -> None:
        _check_ts(event)
        run_id, ts = event.run_id, event.ts
        accounts = event.accounts
        if len(set(accounts)) != len(accounts):
            raise Reject("run_started: 'accounts' lists an account twice")
        if self.rows.run(run_id) is not None:
            self._unseen(event)  # (the same line again says so)
            raise Reject(f"run_started: run {run_id!r} was already started (by another event)")

        run = {
            "id": run_id,
            "task_id": event.task_id,
            "task_name": event.task_name,
            "status": "RUNNING",
            "started_at": ts,
            "completed_at": None,
            "accounts_total": len(accounts),
            "accounts_completed": 0,
            "accounts_failed": 0,
            "accounts_cancelled": 0,
            "accounts_interrupted": 0,
            "steps": event.steps,
            "concurrency": event.concurrency,
            "host": event.host,
            "pid": event.pid,
            "resumed_from": event.resumed_from,
            "reason": None,
            "trigger": event.trigger or "cli",
            "scheduled_for": event.scheduled_for,
        }
        run_accounts = {
            account_id: {
                "run_id": run_id,
                "account_id": account_id,
                "position": position,
                "status": "PENDING",
                "attempts": 0,
                "started_at": None,
                "completed_at": None,
                "steps_ok": 0,
                "steps_failed": 0,
                "error": None,
                "log": "",
            }
            for position, account_id in enumerate(accounts)
        }
        self.rows.put_run(run, run_accounts)
        self._run_ids[run_id][event.id] = None
        for account_id in accounts:
            account = self._account_row(account_id, ts)
            account["runs_count"] += 1
            account["last_run_id"] = run_id
            account["last_status"] = "PENDING"
            account["updated_at"] = ts

        task = self.rows.task(event.task_id)
        if task is None:
            task = {"id": event.task_id, "runs_count": 0, "first_seen_at": ts}
        task["name"] = event.task_name
        task["runs_count"] += 1
        task["last_run_id"] = run_id
        task["last_status"] = "RUNNING"
        task["updated_at"] = ts
        self.rows.put_task(task)

    def account_started(self, event: AccountStarted) -> None:
        _check_ts(event)
        run, ra = self._run_account(event)
        if ra["status"] in ACCOUNT_FINAL_STATUSES:
            raise Reject(f"account_started: account {ra['account_id']!r} already finished ({ra['status']})")
        ts, attempt = event.ts, event.attempt
        self._run_ids[run["id"]][event.id] = ra  # (marks ra changed)
        ra["status"] = "RUNNING"
        if attempt > ra["attempts"]:
            ra["attempts"] = attempt
        if ra["started_at"] is None:
            ra["started_at"] = ts
        if attempt > 1:  # the log tells what the other columns do not: retries, failures, screenshots
            ra["log"] += f"{ts[11:23]} attempt {attempt} started\n"
        account = self._account_row(ra["account_id"], ts)
        account["last_run_id"] = run["id"]
        account["last_status"] = "RUNNING"
        account["updated_at"] = ts

    def _check_duration(self, event: StepFinished) -> None:
        """Reject a step whose duration cannot be true (``envelope.duration_problem``).

        The report draws every step's duration on a time line: a year-long or negative one would
        stretch it beyond use, so the tables never hold one.
        """
        _check_ts(event)
        run = self._runs[event.run_id]  # (in memory: its run_accounts row was, and they load together)
        problem = duration_problem(event.duration_ms, event.ts, run["started_at"])
        if problem is not None:
            raise Reject(f"step_finished: {problem}")

    def step_finished(self, event: StepFinished, _final: frozenset[str] = ACCOUNT_FINAL_STATUSES,
                      _slack_ms: float = DURATION_SLACK_MS) -> None:
        # Three events in four are steps: the common case (its run in memory, the step ok) is short.
        # (subscripts in a try, not .get() calls: the miss is rare, and a try costs nothing in 3.11+)
        run_id = event.run_id
        try:
            ra = self._run_accounts[run_id][event.account_id]
        except KeyError:
            _, ra = self._run_account(event)  # loads the run, or says why the event cannot apply
        seen, event_id = self._run_ids[run_id], event.id
        if event_id in seen:
            self._unseen(event)  # (raises, saying why)
        if ra["status"] in _final:
            raise Reject(f"step_finished: account {ra['account_id']!r} already finished ({ra['status']})")
        if not 0.0 <= event.duration_ms <= _slack_ms:  # (one comparison for the common case)
            self._check_duration(event)
        ok = event.ok
        if not ok:
            _check_ts(event)  # (a failed step stores its time; an ok one's is checked for length only)
        seen[event_id] = ra  # (every check passed: from here on the event applies; marks ra changed)
        if ok:
            if event.skipped:  # neither ok nor failed: the log line is where it shows
                ra["log"] += f"{event.ts[11:23]} step {event.index + 1} {event.action} skipped\n"
                return
            ra["steps_ok"] += 1
            return
        ra["steps_failed"] += 1
        ra["log"] += (
            f"{event.ts[11:23]} step {event.index + 1} {event.action} failed "
            f"after {event.duration_ms:.0f} ms: {event.error}\n"
        )

    def artifact_saved(self, event: ArtifactSaved) -> None:
        _check_ts(event)
        run, ra = self._run_account(event)
        if self.rows.artifact_known(event.path):
            raise Reject(f"artifact_saved: path {event.path!r} is already recorded (an artifact row is never replaced)")
        self._run_ids[run["id"]][event.id] = ra  # (marks ra changed: its log)
        self.rows.add_artifact(
            {
                "path": event.path,
                "run_id": run["id"],
                "account_id": ra["account_id"],
                "kind": event.kind,
                "attempt": event.attempt,
                "sha256": event.sha256,
                "bytes": event.bytes,
                "ts": event.ts,
            }
        )
        ra["log"] += f"{event.ts[11:23]} saved {event.path}\n"

    def account_finished(self, event: AccountFinished) -> None:
        _check_ts(event)
        run, ra = self._run_account(event)
        status, error, attempt, ts = event.status, event.error, event.attempt, event.ts
        if status not in ACCOUNT_FINAL_STATUSES:
            raise Reject(f"account_finished: unknown status {status!r}")
        if ra["status"] in ACCOUNT_FINAL_STATUSES:
            raise Reject(f"account_finished: account {ra['account_id']!r} already finished ({ra['status']})")
        self._run_ids[run["id"]][event.id] = ra  # (marks ra changed)
        if attempt > ra["attempts"]:
            ra["attempts"] = attempt
        ra["error"] = error
        if event.retrying:
            ra["log"] += f"{ts[11:23]} attempt {attempt} {status}, retrying: {error}\n"
            return
        ra["status"] = status
        ra["completed_at"] = ts
        if status != "COMPLETED":
            ra["log"] += f"{ts[11:23]} {status}" + (f": {error}\n" if error else "\n")
        run[_COUNT_COLUMN[status]] += 1
        self._dirty_runs.add(run["id"])
        account = self._account_row(ra["account_id"], ts)
        account["last_run_id"] = run["id"]
        account["last_status"] = status
        account["last_error"] = error
        account["updated_at"] = ts
        if status == "COMPLETED":
            account["warmed_at"] = ts
            account["warm_count"] += 1
        elif status == "FAILED":
            account["fail_count"] += 1

    def run_finished(self, event: RunFinished) -> None:
        _check_ts(event)
        run_id, ts, said = event.run_id, event.ts, event.status
        run = self.rows.run(run_id)
        if run is None:
            raise Reject(f"run_finished: unknown run {run_id!r} (no run_started before it)")
        self._unseen(event)
        if said not in RUN_FINAL_STATUSES:
            raise Reject(f"run_finished: unknown status {said!r}")
        if run["status"] in RUN_FINAL_STATUSES:
            raise Reject(f"run_finished: run {run_id!r} already finished ({run['status']})")
        self.rows.close_run(run_id)  # (its ids are no longer needed: nothing more applies to it)
        if said == "INTERRUPTED":
            status = "INTERRUPTED"
        elif run["accounts_completed"] == run["accounts_total"]:
            status = "COMPLETED"
        else:
            status = "FAILED"
        run["status"] = status
        run["completed_at"] = ts
        run["reason"] = event.reason
        self._dirty_runs.add(run_id)
        task = self.rows.task(run["task_id"])
        if task is not None and task["last_run_id"] == run_id:
            task["last_status"] = status
            task["updated_at"] = ts
            self.rows.touch_task(task["id"])
