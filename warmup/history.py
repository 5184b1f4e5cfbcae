"""Past runs from the database: ``warmup runs`` (a list) and ``warmup show RUN_ID`` (one run).

Read-only, like ``warmup status``. Durations are computed from the events' times in the tables,
never from the clock, so a run still going shows no duration rather than a guess.
"""

from __future__ import annotations

import sqlite3
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from warmup.errors import UsageError
from warmup.projector.scope import parse_instant
from warmup.status import _status, _when, c, connect_readonly

RUN_STATUSES = ("RUNNING", "COMPLETED", "FAILED", "INTERRUPTED")
RUN_COLUMNS = (
    "id, task_id, task_name, status, started_at, completed_at, accounts_total, accounts_completed, "
    "accounts_failed, accounts_cancelled, accounts_interrupted, steps, concurrency, host, pid, resumed_from, reason"
)


def duration_s(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)
    except ValueError:
        return None


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _with_duration(row: dict[str, Any]) -> dict[str, Any]:
    row["duration_s"] = duration_s(row.get("started_at"), row.get("completed_at"))
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
        args.append(parse_instant(since, "--since"))
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


def _console() -> Console:
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=160)


def _json(data: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


def run_runs(
    db_path: Path, *, task_id: str | None, status: str | None, since: str | None, limit: int, as_json: bool
) -> int:
    runs = list_runs(db_path, task_id=task_id, status=status, since=since, limit=limit)
    if as_json:
        _json(runs)
        return 0
    table = Table(title=f"Runs ({len(runs)} shown, newest first)", title_justify="left")
    for col in ("run", "task", "status", "started (UTC)", "duration", "total", "ok", "failed", "other"):
        table.add_column(col, justify="right" if col in ("duration", "total", "ok", "failed", "other") else "left",
                         no_wrap=col == "run")
    for r in runs:
        other = r["accounts_total"] - r["accounts_completed"] - r["accounts_failed"]
        table.add_row(c(r["id"]), c(r["task_id"]), _status(r["status"]), _when(r["started_at"]),
                      _duration_text(r["duration_s"]), str(r["accounts_total"]), str(r["accounts_completed"]),
                      str(r["accounts_failed"]), str(other))
    _console().print(table)
    return 0


def run_show(db_path: Path, run_id: str, *, as_json: bool) -> int:
    data = show_run(db_path, run_id)
    if as_json:
        _json(data)
        return 0
    run = data["run"]
    console = _console()
    console.print(
        f"[bold]{c(run['id'])}[/]  task [bold]{c(run['task_id'])}[/] ({c(run['task_name'])})  {_status(run['status'])}"
    )
    console.print(f"started {_when(run['started_at'])}  finished {_when(run['completed_at']) or '-'}  "
                  f"duration {_duration_text(run['duration_s']) or '-'}  on {c(run['host'])} (pid {run['pid']})")
    console.print(f"accounts: {run['accounts_total']} total, {run['accounts_completed']} completed, "
                  f"{run['accounts_failed']} failed, {run['accounts_cancelled']} cancelled, "
                  f"{run['accounts_interrupted']} interrupted")
    if run["resumed_from"]:
        console.print(f"resumed from {c(run['resumed_from'])}")
    if run["reason"]:
        console.print(f"reason: {c(run['reason'])}")
    table = Table(title_justify="left")
    for col in ("account", "status", "attempts", "started (UTC)", "duration", "steps ok", "failed", "error",
                "artifacts"):
        table.add_column(col, overflow="fold")
    for a in data["accounts"]:
        table.add_row(c(a["account_id"]), _status(a["status"]), str(a["attempts"]), _when(a["started_at"]),
                      _duration_text(a["duration_s"]), str(a["steps_ok"]), str(a["steps_failed"]),
                      c((a["error"] or "")[:200]), "\n".join(c(x["path"]) for x in a["artifacts"]))
    console.print(table)
    return 0
