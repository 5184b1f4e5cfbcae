"""Past runs from the database: ``warmup runs`` (a list) and ``warmup show RUN_ID`` (one run).

Read-only, like ``warmup status``. Durations are computed from the events' times in the tables,
never from the clock, so a run still going shows no duration rather than a guess.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from rich.table import Table

from warmup.errors import UsageError
from warmup.safe_text import for_rich
from warmup.status import connect_readonly, make_console, print_json, status_markup, when
from warmup.times import format_duration_ms, parse_log_ts, seconds_between

RUN_STATUSES = ("RUNNING", "COMPLETED", "FAILED", "INTERRUPTED")
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


def _find_run(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:  # a unique prefix will do, as with git
        like = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (like,)).fetchall()
        if len(found) == 1:
            row = found[0]
        elif found:
            raise UsageError(f"{run_id!r} matches several runs; give more of the run id (see `warmup runs`)")
    if row is None:
        raise UsageError(f"no run {run_id!r} in the database (see `warmup runs`)")
    return _with_duration(dict(row))


def show_run(db_path: Path, run_id: str) -> dict[str, Any]:
    conn = connect_readonly(db_path)
    try:
        run = _find_run(conn, run_id)
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
    return {"run": run, "task": dict(task) if task else None, "accounts": accounts}


def run_runs(
    db_path: Path, *, task_id: str | None, status: str | None, since: str | None, limit: int, as_json: bool
) -> int:
    runs = list_runs(db_path, task_id=task_id, status=status, since=since, limit=limit)
    if as_json:
        print_json(runs)
        return 0
    table = Table(title=f"Runs ({len(runs)} shown, newest first)", title_justify="left")
    for col in ("run", "task", "status", "started (UTC)", "duration", "total", "ok", "failed", "other"):
        table.add_column(col, justify="right" if col in ("duration", "total", "ok", "failed", "other") else "left",
                         no_wrap=col == "run")
    for r in runs:
        other = r["accounts_total"] - r["accounts_completed"] - r["accounts_failed"]
        table.add_row(for_rich(r["id"]), for_rich(r["task_id"]), status_markup(r["status"]), when(r["started_at"]),
                      _duration(r["duration_s"]), str(r["accounts_total"]), str(r["accounts_completed"]),
                      str(r["accounts_failed"]), str(other))
    make_console().print(table)
    return 0


def run_show(db_path: Path, run_id: str, *, as_json: bool) -> int:
    data = show_run(db_path, run_id)
    if as_json:
        print_json(data)
        return 0
    run = data["run"]
    console = make_console()
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
    for col in ("account", "status", "attempts", "started (UTC)", "duration", "steps ok", "failed", "error",
                "artifacts"):
        table.add_column(col, overflow="fold")
    for a in data["accounts"]:
        table.add_row(for_rich(a["account_id"]), status_markup(a["status"]), str(a["attempts"]), when(a["started_at"]),
                      _duration(a["duration_s"]), str(a["steps_ok"]), str(a["steps_failed"]),
                      for_rich((a["error"] or "")[:200]), "\n".join(for_rich(x["path"]) for x in a["artifacts"]))
    console.print(table)
    return 0
