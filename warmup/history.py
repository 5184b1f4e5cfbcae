"""Past runs from the database: ``warmup runs`` (a list) and ``warmup show RUN_ID`` (one run).

Read-only, like ``warmup status``. Durations are computed from the events' times in the tables,
never from the clock, so a run still going shows no duration rather than a guess.

``show`` takes a whole run id, a unique prefix or ``last`` among the database's runs (one resolver
for every command: ``warmup.run_ids``). What the tables do not tell apart it reads from the run's
lines in the log the database was built from (or ``--log``): which failed steps were optional (an
optional failure does not fail its account, so it is counted apart and never as "failed") and what
each attempt did, for an account tried more than once. Without that log it shows the tables' counts.
A scoped database (``warmup replay --until/--run``) says so above its tables, as ``runs`` and
``status`` do.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from warmup.errors import UsageError
from warmup.log import Log, as_log
from warmup.report.data import read_timings
from warmup.run_ids import resolve_run_id
from warmup.safe_text import for_rich
from warmup.status import connect_readonly, make_console, print_json, print_scope, read_scope, status_markup, when
from warmup.times import format_duration_ms, parse_log_ts, seconds_between

RUN_STATUSES = ("RUNNING", "COMPLETED", "FAILED", "INTERRUPTED")
OPTIONAL_STYLE = "dark_orange"  # an optional step that failed: not a failure of its account
RUN_COLUMNS = (
    "id, task_id, task_name, status, started_at, completed_at, accounts_total, accounts_completed, "
    "accounts_failed, accounts_cancelled, accounts_interrupted, steps, concurrency, host, pid, resumed_from, reason"
)


def _duration(seconds: float | None) -> str:
    return "" if seconds is None else format_duration_ms(seconds * 1000)


def _with_duration(row: dict[str, Any]) -> dict[str, Any]:
    row["duration_s"] = seconds_between(row.get("started_at"), row.get("completed_at"))
    return row


def list_runs(
    db_path: Path, *, task_id: str | None = None, status: str | None = None, since: str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    where, args = [], []
    if task_id:
        where.append("task_id = ?")
        args.append(task_id)
    if status:
        if status.upper() not in RUN_STATUSES:
            raise UsageError(f"--status {status!r} is not a run status; use one of {', '.join(RUN_STATUSES)}")
        where.append("status = ?")
        args.append(status.upper())
    if since:
        where.append("started_at >= ?")
        args.append(parse_log_ts(since, "--since"))
    sql = f"SELECT {RUN_COLUMNS} FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_at DESC, id DESC LIMIT ?"
    conn = connect_readonly(db_path)
    try:
        return [_with_duration(dict(r)) for r in conn.execute(sql, (*args, limit))]
    finally:
        conn.close()


def _find_run(conn: sqlite3.Connection, run_id: str, db_path: Path) -> dict[str, Any]:
    """The run ``run_id`` names (whole id, unique prefix or ``last``) among the database's runs."""
    known = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY started_at, id")]
    found = resolve_run_id(run_id, known, db_path)
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (found,)).fetchone()
    return _with_duration(dict(row))


@dataclass
class AttemptSteps:
    """What one attempt of an account did, from the log."""

    attempt: int
    steps_ok: int = 0
    steps_failed: int = 0  # steps that failed the attempt (not optional)
    steps_failed_optional: int = 0  # optional steps that failed: the attempt went on
    steps_skipped: int = 0  # steps a condition skipped: neither ok nor failed
    status: str | None = None  # its account_finished status (FAILED with retrying: it was tried again)
    retried: bool = False


def attempts_from_log(log_path: Log | Path, run_id: str) -> dict[str, list[AttemptSteps]] | None:
    """Each account's attempts in ``run_id`` as the log tells them; None when the log holds no such run.

    Read by the report's ``read_timings`` (one reader of a run's steps and attempts for both), so a
    line the report skips (not an event, an impossible duration) is left out here too.
    """
    log = as_log(log_path)
    if not log.exists():
        return None
    timings = read_timings(log, run_id)
    if timings.events == 0:
        return None
    out: dict[str, dict[int, AttemptSteps]] = {}
    for account, attempts in timings.attempts.items():
        for attempt in attempts:
            steps = out.setdefault(account, {}).setdefault(attempt.number, AttemptSteps(attempt.number))
            if attempt.status is not None:
                steps.status, steps.retried = attempt.status, attempt.retrying
    for account, account_steps in timings.steps.items():
        for step in account_steps:
            steps = out.setdefault(account, {}).setdefault(step.attempt, AttemptSteps(step.attempt))
            if step.skipped:
                steps.steps_skipped += 1
            elif step.ok:
                steps.steps_ok += 1
            elif step.optional:
                steps.steps_failed_optional += 1
            else:
                steps.steps_failed += 1
    return {account: [by[n] for n in sorted(by) if n > 0] for account, by in out.items()}


def show_run(db_path: Path, run_id: str, log_path: Log | Path | str | None = None) -> dict[str, Any]:
    """The run, its task and accounts; ``log_path`` (default: the log the database was built from) adds
    each account's optional failures and attempts (``steps_failed_optional``, ``attempts_detail``)."""
    conn = connect_readonly(db_path)
    try:
        run = _find_run(conn, run_id, db_path)
        scope = read_scope(conn)
        if log_path is None:
            recorded = conn.execute("SELECT log FROM warmup_checkpoints WHERE name = 'core'").fetchone()
            log_path = recorded[0] if recorded and recorded[0] else None  # a path, or a stream's URL
        task = conn.execute("SELECT id, name, runs_count FROM tasks WHERE id = ?", (run["task_id"],)).fetchone()
        artifacts: dict[str, list[dict[str, Any]]] = {}
        for a in conn.execute(
            "SELECT account_id, path, kind, attempt, bytes, sha256, ts FROM artifacts "
            "WHERE run_id = ? ORDER BY ts, path",
            (run["id"],),
        ):
            a = dict(a)
            artifacts.setdefault(a.pop("account_id"), []).append(a)
        accounts = []
        for ra in conn.execute(
            "SELECT account_id, position, status, attempts, started_at, completed_at, steps_ok, steps_failed, "
            "error, log FROM run_accounts WHERE run_id = ? ORDER BY position",
            (run["id"],),
        ):
            ra = _with_duration(dict(ra))
            ra["artifacts"] = artifacts.get(ra["account_id"], [])
            accounts.append(ra)
    finally:
        conn.close()
    detail = attempts_from_log(log_path, run["id"]) if log_path is not None else None
    for ra in accounts:
        tried = detail.get(ra["account_id"], []) if detail is not None else None
        ra["steps_failed_optional"] = None if tried is None else sum(a.steps_failed_optional for a in tried)
        ra["attempts_detail"] = None if tried is None else [asdict(a) for a in tried]
    return {"run": run, "task": dict(task) if task else None, "accounts": accounts, "scope": scope,
            "log": (log_path.name if isinstance(log_path, Log) else str(log_path)) if detail is not None else None}


def run_runs(
    db_path: Path, *, task_id: str | None, status: str | None, since: str | None, limit: int, as_json: bool
) -> int:
    runs = list_runs(db_path, task_id=task_id, status=status, since=since, limit=limit)
    if as_json:
        print_json(runs)
        return 0
    console = make_console()
    print_scope(console, db_path)
    table = Table(title=f"Runs ({len(runs)} shown, newest first)", title_justify="left")
    for col in ("run", "task", "status", "started (UTC)", "duration", "total", "ok", "failed", "other"):
        table.add_column(col, justify="right" if col in ("duration", "total", "ok", "failed", "other") else "left",
                         no_wrap=col == "run")
    for r in runs:
        other = r["accounts_total"] - r["accounts_completed"] - r["accounts_failed"]
        table.add_row(for_rich(r["id"]), for_rich(r["task_id"]), status_markup(r["status"]), when(r["started_at"]),
                      _duration(r["duration_s"]), str(r["accounts_total"]), str(r["accounts_completed"]),
                      str(r["accounts_failed"]), str(other))
    console.print(table)
    return 0


def _steps_cells(a: dict[str, Any]) -> tuple[str, str, str]:
    """The steps ok / failed / optional-failed cells; with several attempts, a line per attempt."""
    tried = a["attempts_detail"]
    if tried is None:  # no log: the tables' counts, optional failures included in "failed"
        return str(a["steps_ok"]), str(a["steps_failed"]), "?"
    if len(tried) <= 1:
        one = tried[0] if tried else asdict(AttemptSteps(1))
        return _ok(one), _failed(one), _optional(one)
    return ("\n".join(f"#{t['attempt']}: {_ok(t)}" for t in tried),
            "\n".join(f"#{t['attempt']}: {_failed(t)}" for t in tried),
            "\n".join(f"#{t['attempt']}: {_optional(t)}" for t in tried))


def _ok(t: dict[str, Any]) -> str:
    """Steps ok, and those a condition skipped (counted as neither ok nor failed) beside them."""
    skipped = t.get("steps_skipped", 0)
    return f"{t['steps_ok']} (+{skipped} skipped)" if skipped else str(t["steps_ok"])


def _failed(t: dict[str, Any]) -> str:
    n = t["steps_failed"]
    return f"[red]{n}[/]" if n else "0"


def _optional(t: dict[str, Any]) -> str:
    n = t["steps_failed_optional"]
    return f"[{OPTIONAL_STYLE}]{n}[/]" if n else "0"



def _attempts_cell(a: dict[str, Any]) -> str:
    """The attempt count, or with several attempts a line each: ``#1 FAILED, retried`` / ``#2 COMPLETED``."""
    tried = a["attempts_detail"] or []
    if len(tried) <= 1:
        return str(a["attempts"])
    lines = []
    for t in tried:
        label = status_markup(t["status"] or "RUNNING") + (", retried" if t["retried"] else "")
        lines.append(f"#{t['attempt']} {label}")
    return "\n".join(lines)


def _artifact_cell(a: dict[str, Any]) -> str:
    several = (a["attempts"] or 0) > 1
    return "\n".join(
        (f"#{x['attempt']} " if several and x.get("attempt") else "") + for_rich(x["path"]) for x in a["artifacts"]
    )


def run_show(db_path: Path, run_id: str, *, as_json: bool, log_path: Log | Path | str | None = None) -> int:
    data = show_run(db_path, run_id, log_path)
    if as_json:
        print_json(data)
        return 0
    run = data["run"]
    console = make_console()
    print_scope(console, db_path, data["scope"])
    console.print(
        f"[bold]{for_rich(run['id'])}[/]  task [bold]{for_rich(run['task_id'])}[/] "
        f"({for_rich(run['task_name'])})  {status_markup(run['status'])}"
    )
    console.print(f"started {when(run['started_at'])}  finished {when(run['completed_at']) or '-'}  "
                  f"duration {_duration(run['duration_s']) or '-'}  on {for_rich(run['host'])} (pid {run['pid']})")
    console.print(f"accounts: {run['accounts_total']} total, {run['accounts_completed']} completed, "
                  f"{run['accounts_failed']} failed, {run['accounts_cancelled']} cancelled, "
                  f"{run['accounts_interrupted']} interrupted")
    if run["resumed_from"]:
        console.print(f"resumed from {for_rich(run['resumed_from'])}")
    if run["reason"]:
        console.print(f"reason: {for_rich(run['reason'])}")
    table = Table(title_justify="left")
    for col in ("account", "status", "attempts", "started (UTC)", "duration", "ok", "failed", "optional",
                "error", "artifacts"):
        table.add_column(col, overflow="fold")
    for a in data["accounts"]:
        ok, failed, optional = _steps_cells(a)
        table.add_row(for_rich(a["account_id"]), status_markup(a["status"]), _attempts_cell(a),
                      when(a["started_at"]), _duration(a["duration_s"]), ok, failed, optional,
                      for_rich((a["error"] or "")[:200]), _artifact_cell(a))
    console.print(table)
    _note_sources(console, data)
    return 0


def _note_sources(console: Console, data: dict[str, Any]) -> None:
    if data["log"] is None:
        console.print("[dim]optional: '?': the run's log was not found, so 'failed' counts the failed optional "
                      "steps too; pass --log to tell them apart[/]")
    elif any((a["steps_failed_optional"] or 0) for a in data["accounts"]):
        console.print(f"[dim]optional: optional steps that failed; their accounts went on "
                      f"(from {for_rich(data['log'])})[/]")
