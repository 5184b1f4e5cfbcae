"""Starting and cancelling runs, the same for the API, the dashboard and the schedules.

A ``Problem`` carries the HTTP status and one line for people; the API turns it into JSON, a page
into its error banner, the scheduler into one line on stderr.
"""

from __future__ import annotations

from warmup.runs.origin import RunOrigin
from warmup.serve.launcher import START_WAIT_S, Launch, StartFailed
from warmup.serve.state import ServeState
from warmup.tasks import SAFE_ID

MAX_ACCOUNTS_ASKED = 10_000


class Problem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def start_run(state: ServeState, task_id: str, origin: RunOrigin, *, accounts: tuple[str, ...] = (),
                    retry_failed: bool = False, wait_s: float = START_WAIT_S) -> Launch:
    """Start ``task_id`` from its file in ``--tasks``; ``Problem`` says why not (404, 409, 422, 503)."""
    if not SAFE_ID.match(task_id):
        raise Problem(404, f"no task {task_id[:80]!r} in {state.config.tasks_dir}")
    if len(accounts) > MAX_ACCOUNTS_ASKED or not all(isinstance(a, str) and SAFE_ID.match(a) for a in accounts):
        raise Problem(400, "accounts: a list of account ids (letters, digits, . _ -)")
    entries = await state.tasks()
    entry = next((e for e in entries if e.id == task_id), None)
    if entry is None:
        raise Problem(404, f"no task {task_id!r} in {state.config.tasks_dir}")
    if entry.task is None:
        raise Problem(409, entry.error or f"task {task_id!r} does not load")
    known = {a.id for a in entry.task.accounts}
    unknown = [a for a in accounts if a not in known]
    if unknown:
        raise Problem(400, f"task {task_id!r} has no account {unknown[0]!r}")
    if not state.launcher.accepting:
        raise Problem(503, "the server is shutting down and starts no new run")
    try:
        return await state.launcher.start(entry, origin, accounts=accounts, retry_failed=retry_failed, wait_s=wait_s)
    except StartFailed as exc:
        raise Problem(503 if exc.exit_code is None else 422, str(exc)) from None


async def cancel_run(state: ServeState, run_id: str) -> None:
    """SIGINT the run's process; ``Problem`` 404/409 when there is none to signal here."""
    if not SAFE_ID.match(run_id):
        raise Problem(404, f"no run {run_id[:80]!r}")
    if not await state.launcher.cancel(run_id):
        raise Problem(409, f"run {run_id} has no live process on this host to cancel (finished, or elsewhere)")

