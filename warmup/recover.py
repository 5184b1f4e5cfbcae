"""Close dead runs: a runner killed mid-run leaves ``run_started`` without ``run_finished``.

``warmup recover`` (and every ``warmup run``, before it starts) looks only at the log's leases
(``warmup.runs.liveness``: lock files in ``<log>.d/runs/`` beside a file, a key-value bucket beside a
stream): a run lease that no live process holds is a dead run. It never scans the whole log to find
them. For each dead run started on this host (another host's is left alone unless ``force``: its
runner may be alive there, and flock does not reach across hosts; a lease that expired in a
key-value bucket is dead on every host), it

1. holds the dead run's lease (so two recoverers never close one run twice),
2. reads that run's events from the log (lines without the run id's bytes are skipped before
   decoding), to learn which accounts finished, which were running and which never started,
3. appends, through the log's appender (a file's first cuts a torn last line), ``account_finished``
   INTERRUPTED for each account that was running (its last attempt), CANCELLED (attempt 0) for
   each that never started, and ``run_finished`` INTERRUPTED with the reason,
4. forgets the lease (removes the lock file), then lets it go.

The appended events carry ``recovered: true`` and ``last_seen`` (the ``ts`` of the run's last
event before it died); their own ``ts`` is when recovery happened. A recoverer that dies half-way
leaves the lock file, and the next one closes only what is still open: recovery is idempotent.

This module reads the log only: the runner calls it and must never open the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from warmup.events.envelope import (
    AccountFinished,
    AccountStarted,
    EventDecoder,
    InvalidEvent,
    RunFinished,
    RunStarted,
    host_and_pid,
)
from warmup.locks import Holder
from warmup.log import Log, LogAppender, LogMissing, as_log
from warmup.runs.liveness import AccountLease, Liveness, liveness_for

RUNNING, BETWEEN_ATTEMPTS = "RUNNING", "RETRYING"
FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED"})
READ_BYTES = 1 << 20  # complete lines read from the log at a time


@dataclass
class AccountState:
    status: str = "PENDING"  # PENDING, RUNNING, RETRYING (between attempts) or a final status
    attempt: int = 0
    error: str | None = None


@dataclass
class RunState:
    """What the log says about one run."""

    run_id: str
    started: RunStarted | None = None
    finished: RunFinished | None = None
    accounts: dict[str, AccountState] = field(default_factory=dict)
    last_ts: str | None = None
    resumed_by: list[str] = field(default_factory=list)  # later runs started with resumed_from = this run

    def open_accounts(self) -> list[tuple[str, AccountState]]:
        return [(a, s) for a, s in self.accounts.items() if s.status not in FINAL]

    def final_status(self, account_id: str) -> str:
        return self.accounts[account_id].status


def _lines_with(log: Log, needle: bytes) -> Iterator[bytes]:
    """The log's complete lines that hold ``needle``, in order; none if there is no log."""
    try:
        reader = log.reader()
    except LogMissing:
        return
    with reader:
        position = log.START
        while (batch := reader.read(position, READ_BYTES)).lines:
            position = batch.end
            for data in batch.lines:
                if needle in data:
                    yield data


def scan_run(log_path: Log | Path, run_id: str) -> RunState:
    """Read ``run_id``'s events from the log (lines that cannot be its events are never decoded; a
    stream reads only the run's subjects)."""
    state = RunState(run_id)
    decode = EventDecoder()
    for data in _lines_with(as_log(log_path).narrowed(run_id=run_id), run_id.encode()):
        try:
            event = decode(data)
        except InvalidEvent:
            continue
        if isinstance(event, RunStarted) and event.resumed_from == run_id and event.run_id != run_id:
            state.resumed_by.append(event.run_id)
            continue
        if getattr(event, "run_id", None) != run_id:
            continue
        state.last_ts = event.ts
        if isinstance(event, RunStarted):
            if state.started is None:
                state.started = event
                state.accounts = {a: AccountState() for a in event.accounts}
            continue
        if isinstance(event, RunFinished):
            state.finished = state.finished or event
            continue
        account = state.accounts.get(getattr(event, "account_id", ""))
        if account is None or account.status in FINAL:
            continue
        if isinstance(event, AccountStarted):
            account.status, account.attempt = RUNNING, event.attempt
        elif isinstance(event, AccountFinished):
            account.attempt = event.attempt or account.attempt
            account.error = event.error
            account.status = BETWEEN_ATTEMPTS if event.retrying else event.status
    return state


def close_run(writer: LogAppender, state: RunState, died: str) -> dict[str, int]:
    """Append the events that close a dead run; returns how many accounts got each status."""
    counts: dict[str, int] = {}
    if state.started is None or state.finished is not None:
        return counts
    extra = {"recovered": True, "last_seen": state.last_ts, "task_id": state.started.task_id}
    for account_id, account in state.open_accounts():
        if account.status == "PENDING":
            status, attempt, error = "CANCELLED", 0, f"not started: {died}"
        else:
            status, attempt = "INTERRUPTED", account.attempt
            when = "between attempts" if account.status == BETWEEN_ATTEMPTS else f"during attempt {attempt}"
            error = f"interrupted {when}: {died}"
        writer.emit(
            "account_finished", run_id=state.run_id, account_id=account_id, status=status, error=error,
            attempt=attempt, **extra,
        )
        account.status = status
        counts[status] = counts.get(status, 0) + 1
    writer.emit("run_finished", run_id=state.run_id, status="INTERRUPTED", reason=died, **extra)
    return counts


@dataclass
class Recovered:
    run_id: str
    holder: Holder
    counts: dict[str, int]
    had_started: bool  # False: the runner died before writing run_started (nothing to close)
    already_finished: bool  # run_finished was there (it died just before removing its lock)

    def describe(self) -> str:
        where = f"host {self.holder.host} pid {self.holder.pid}"
        if not self.had_started:
            return f"removed the lock of run {self.run_id} ({where}): it died before its run_started"
        if self.already_finished:
            return f"removed the lock of run {self.run_id} ({where}): its run_finished is in the log"
        parts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items())) or "no account open"
        return f"recovered dead run {self.run_id} ({where}): {parts}; run INTERRUPTED"


@dataclass
class Skipped:
    run_id: str
    holder: Holder
    busy: str | None = None  # an account of the run that a live worker drives (a stream's leases)

    def describe(self) -> str:
        if self.busy is not None:
            return (f"left run {self.run_id} alone: its coordinator is gone, but {self.busy}; "
                    "run `warmup recover` again once the workers are done")
        return (
            f"left run {self.run_id} alone: it was started on host {self.holder.host} (pid {self.holder.pid}), "
            "not this one; use --force once you know its runner is gone"
        )


@dataclass
class RecoveryReport:
    recovered: list[Recovered] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _hold_open_accounts(liveness: Liveness, state: RunState, held: list[AccountLease]) -> str | None:
    """Take the lease of each account of ``state`` still open, into ``held``; what holds one, if any.

    With every open account's lease held, no worker can start one of them while the run is closed;
    a worker that takes a lease afterwards reads ``run_finished`` and leaves the account alone.
    """
    for account_id, _ in state.open_accounts():
        lease = liveness.account_lease(account_id, state.run_id)
        holder = lease.try_acquire()
        if holder is not None:
            return f"account {account_id} is being driven by {holder.describe()}"
        held.append(lease)
    return None


def lock_is_held(log_path: Log | Path, run_id: str) -> Holder | None:
    """The holder of ``run_id``'s run lease if a live process holds it, else None."""
    return liveness_for(log_path).run_holder(run_id)


def has_lock_file(log_path: Log | Path, run_id: str) -> bool:
    return liveness_for(log_path).has_lease(run_id)


def recover_dead_runs(
    log_path: Log | Path,
    *,
    force: bool = False,
    writer: LogAppender | None = None,
    on_result: Callable[[Recovered | Skipped], None] | None = None,
) -> RecoveryReport:
    """Close every dead run of ``log_path``; see the module docstring. Idempotent, safe to run at once.

    ``writer``: the appender to close runs with (the runner's own); else one is opened when needed.
    """
    report = RecoveryReport()
    log = as_log(log_path)
    liveness = liveness_for(log)
    this_host, this_pid = host_and_pid()
    own_writer: LogAppender | None = None
    try:
        for dead in liveness.dead_runs():
            run_id, holder = dead.run_id, dead.holder
            if holder.host not in (this_host, "?") and not force and not liveness.cross_host:
                result: Recovered | Skipped = Skipped(run_id, holder)
                report.skipped.append(result)
                dead.leave()
            else:
                state = scan_run(log, run_id)
                counts: dict[str, int] = {}
                held: list[AccountLease] = []
                busy = _hold_open_accounts(liveness, state, held) if liveness.cross_host else None
                if busy is not None:  # workers still drive its accounts: close it once they are done
                    for lease in held:
                        lease.release()
                    result = Skipped(run_id, holder, busy)
                    report.skipped.append(result)
                    dead.leave()
                    if on_result is not None:
                        on_result(result)
                    continue
                if held:  # read again with every open account held: one may have ended meanwhile
                    state = scan_run(log, run_id)
                if state.started is not None and state.finished is None:
                    if writer is None:
                        writer = own_writer = log.appender()
                    died = (
                        f"the runner (host {holder.host}, pid {holder.pid}) died without finishing the run; "
                        f"closed by warmup recover (host {this_host}, pid {this_pid})"
                    )
                    counts = close_run(writer, state, died)
                for lease in held:
                    lease.release()
                dead.closed()
                result = Recovered(run_id, holder, counts, state.started is not None, state.finished is not None)
                report.recovered.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        if own_writer is not None:
            own_writer.close()
    return report
