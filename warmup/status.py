"""``warmup status``: recent runs with their account counts, and the accounts, from the database.

Every value from the database goes into a table through ``for_rich`` (see ``safe_text``): it can
hold text from web pages. ``history`` shares these helpers.

Read-only: it opens the database with ``mode=ro`` and never writes, so it is safe beside a running
projector. Tables are drawn with rich (colour only on a terminal); ``--json`` prints the same data.

A scoped database (built by ``warmup replay --until/--run``: its checkpoint has a ``scope``) shows
part of the log only; ``status``, ``runs`` and ``show`` say so in a first line (``print_scope``),
and ``--json`` carries it as ``scope``, so nobody takes a picture of the past for the present.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from warmup.errors import UsageError
from warmup.safe_text import for_rich
from warmup.sqlite_errors import SQLITE_ERROR, explain_sqlite_error, primary_code

STATUS_STYLE = {
    "COMPLETED": "green",
    "FAILED": "red",
    "RUNNING": "yellow",
    "PENDING": "dim",
    "CANCELLED": "magenta",
    "INTERRUPTED": "magenta",
}


def connect_readonly(db_path: Path) -> sqlite3.Connection:
    if not db_path.is_file():
        raise UsageError(f"no database at {db_path}: run `warmup project` (or `warmup run`) first, or pass --db")
    conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute('SELECT 1 FROM "warmup_checkpoints" LIMIT 1')
    except sqlite3.DatabaseError as exc:
        conn.close()
        if primary_code(exc) != SQLITE_ERROR:  # (a missing table is SQLITE_ERROR; a read-only folder is not)
            raise explain_sqlite_error(db_path, exc) from None
        raise UsageError(
            f"{db_path} is not a warmup database of this version (no warmup_checkpoints table): "
            "run `warmup project` to (re)build it"
        ) from None
    return conn


def load_status(db_path: Path, limit: int = 10) -> dict[str, Any]:
    conn = connect_readonly(db_path)
    try:
        runs = [dict(r) for r in conn.execute(
            "SELECT id, task_id, task_name, status, started_at, completed_at, accounts_total, "
            "accounts_completed, accounts_failed, accounts_cancelled, accounts_interrupted, "
            "accounts_total - accounts_completed - accounts_failed - accounts_cancelled - accounts_interrupted "
            "AS accounts_open, resumed_from, reason "
            "FROM runs ORDER BY started_at DESC, id DESC LIMIT ?",
            (limit,),
        )]
        accounts = [dict(r) for r in conn.execute(
            "SELECT id, last_status, warmed_at, warm_count, fail_count, runs_count, last_run_id, last_error "
            "FROM accounts ORDER BY id"
        )]
        checkpoint = dict(conn.execute(
            'SELECT "position", events_applied, events_rejected, last_event_ts FROM warmup_checkpoints '
            "WHERE name = 'core'"
        ).fetchone())
        scope = read_scope(conn)
        projections = [dict(r) for r in conn.execute(
            'SELECT name, version, spec, "position", events_applied, last_event_ts FROM warmup_checkpoints '
            "WHERE name != 'core' ORDER BY name"
        )]
    finally:
        conn.close()
    return {"runs": runs, "accounts": accounts, "checkpoint": checkpoint, "scope": scope,
            "projections": projections}


def read_scope(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The checkpoint's scope (``{"until": ..., "runs": [...]}``) of a partial replay; None for a full one."""
    try:
        row = conn.execute("SELECT scope FROM warmup_checkpoints WHERE name = 'core'").fetchone()
    except sqlite3.OperationalError:  # an older database, before scopes: a full projection
        return None
    if row is None or not row[0]:
        return None
    try:
        data = orjson.loads(row[0])
    except orjson.JSONDecodeError:
        return {"until": None, "runs": [], "unreadable": True}
    return data if isinstance(data, dict) else {"until": None, "runs": [], "unreadable": True}


def describe_scope(scope: dict[str, Any]) -> str:
    parts = []
    if scope.get("until"):
        parts.append(f"events up to {scope['until']}")
    if scope.get("runs"):
        parts.append("runs " + ", ".join(str(r) for r in scope["runs"]))
    return " and ".join(parts) or "part of the log"


def print_scope(console: Console, db_path: Path, scope: dict[str, Any] | None | bool = False) -> None:
    """One first line saying the database is a partial replay, and of what; nothing for a full one.

    ``scope=False``: read it from ``db_path``.
    """
    if scope is False:
        conn = connect_readonly(db_path)
        try:
            scope = read_scope(conn)
        finally:
            conn.close()
    if not scope:
        return
    console.print(
        f"[bold yellow]partial replay:[/] {for_rich(str(db_path))} holds {for_rich(describe_scope(scope))} only "
        "(made by `warmup replay --until/--run`); `warmup project` will not extend it",
        soft_wrap=True,
    )


def status_markup(text: str | None) -> str:
    if not text:
        return ""
    style = STATUS_STYLE.get(text)
    return f"[{style}]{text}[/]" if style else for_rich(text)


def when(ts: str | None) -> str:
    return for_rich(ts[:19].replace("T", " ")) if ts else ""



def render(data: dict[str, Any], console: Console, db_path: Path | None = None) -> None:
    if data.get("scope") and db_path is not None:
        print_scope(console, db_path, data["scope"])
    runs = Table(title="Recent runs", title_justify="left")
    for col in ("run", "task", "status", "started (UTC)", "finished", "total", "ok", "failed", "other"):
        runs.add_column(col, justify="right" if col in ("total", "ok", "failed", "other") else "left")
    for r in data["runs"]:
        other = r["accounts_cancelled"] + r["accounts_interrupted"] + r["accounts_open"]
        runs.add_row(
            for_rich(r["id"]), for_rich(r["task_id"]), status_markup(r["status"]),
            when(r["started_at"]), when(r["completed_at"]),
            str(r["accounts_total"]), str(r["accounts_completed"]), str(r["accounts_failed"]), str(other),
        )
    console.print(runs)
    accounts = Table(title="Accounts", title_justify="left")
    for col in ("account", "last status", "warmed at (UTC)", "warm", "fail", "last run", "last error"):
        accounts.add_column(col, overflow="fold")
    for a in data["accounts"]:
        accounts.add_row(
            for_rich(a["id"]), status_markup(a["last_status"]), when(a["warmed_at"]),
            str(a["warm_count"]), str(a["fail_count"]),
            for_rich(a["last_run_id"]), for_rich((a["last_error"] or "")[:120]),
        )
    console.print(accounts)
    cp = data["checkpoint"]
    line = f"{cp['events_applied']} events applied"
    if cp["events_rejected"]:
        line += f", {cp['events_rejected']} invalid lines skipped (table rejected_events)"
    console.print(f"[dim]{line}; last event at {when(cp['last_event_ts']) or '-'}[/]")
    for p in data.get("projections", ()):  # the projections of one's own that live in this database
        state = "up to date" if p["position"] == cp["position"] else "behind the core tables (run it again)"
        console.print(f"[dim]projection {for_rich(p['name'])} (version {p['version']}, {for_rich(p['spec'] or '?')}): "
                      f"{p['events_applied']} events handled, {state}[/]")


def make_console() -> Console:
    """Rich's console for tables on stdout; piped, it is wide, not squeezed into 80 columns."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=160)


def print_json(data: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


def run_status(db_path: Path, *, as_json: bool, limit: int) -> int:
    data = load_status(db_path, limit)
    if as_json:
        print_json(data)
        return 0
    render(data, make_console(), db_path)
    return 0
