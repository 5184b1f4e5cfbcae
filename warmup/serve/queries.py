"""The reads of the projected tables that the pages and the API make.

Invariants:

- **Blocking, and read-only.** Each function is ``fn(db_path, ...)``, called in a worker thread
  (``ServeState.db``), never on the event loop. The database is opened with ``mode=ro``: a reader
  can never write, lock out the projector, or create a file.
- **Empty, not an error.** A database the projector has not created yet, or without the tables yet,
  reads as no rows (and ``position`` None).
- **One snapshot.** The rows and the core checkpoint ``position`` of one call come from one read
  transaction, so ``position`` is exactly where the log's events not in those rows begin (a page
  follows the log from there: ``/api/events?from=position``).
- **JSON-ready**: plain dicts of the tables' columns.
- **Index-backed**, fast with 10,000 runs and 100,000 run_accounts rows: runs by
  ``runs_by_start``/``runs_by_task``/``runs_by_status``; an account's recent runs by
  ``run_accounts_by_account`` in rowid order (the order its rows were last written: the projector
  rewrites a row when it changes, so the newest rowid is the run it was last in).
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson

from warmup.errors import UsageError
from warmup.serve.control import Problem

CORE_PROJECTION = "core"
MAX_RECENT = 50
T = TypeVar("T")

RUN_LIST_COLUMNS = (
    "id", "task_id", "task_name", "status", "started_at", "completed_at", "accounts_total",
    "accounts_completed", "accounts_failed", "accounts_cancelled", "accounts_interrupted", "steps",
    "concurrency", "host", "pid", "resumed_from", "reason", "trigger", "scheduled_for",
)  # fmt: skip
_RUN_COLS = ", ".join(f'"{c}"' for c in RUN_LIST_COLUMNS)


@contextmanager
def _snapshot(db_path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection inside one read transaction, or None when there is no database."""
    if not db_path.is_file():
        yield None
        return
    conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0,
                           isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("BEGIN")
        yield conn
    finally:
        conn.close()


def _read(db_path: Path, body: Callable[[sqlite3.Connection], T], empty: T) -> T:
    """``body(conn)`` on one snapshot; ``empty`` when the database or its tables are not there yet."""
    try:
        with _snapshot(db_path) as conn:
            return empty if conn is None else body(conn)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return empty
        raise UsageError(f"{db_path}: cannot read the tables: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{db_path}: not a warmup database ({exc})") from None


def _position(conn: sqlite3.Connection) -> int | None:
    try:
        row = conn.execute('SELECT "position" FROM "warmup_checkpoints" WHERE "name" = ?',
                           (CORE_PROJECTION,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return int(row[0]) if row else None


def checkpoint_position(db_path: Path) -> int | None:
    """Where the core tables end in the log (the next event they have not folded), or None."""
    return _read(db_path, _position, None)


# -- runs --------------------------------------------------------------------------------------
def encode_cursor(started_at: str, run_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([started_at, run_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """``Problem`` 400 (one line) for a cursor this module did not make."""
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        value = None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise Problem(400, f"before={cursor[:40]!r} is not a cursor from a runs page's 'next'")
    return value[0], value[1]


def list_runs(db_path: Path, *, status: str | None = None, task: str | None = None, since: str | None = None,
              limit: int = 50, before: str | None = None) -> dict[str, Any]:
    """Runs newest first (by start, then id): ``{"runs", "next", "position"}``.

    ``since`` is a log timestamp (runs started at or after it); ``before`` the ``next`` of the page
    before, None on the first page. ``next`` is None on the last page.
    """
    where, args = [], []  # type: ignore[var-annotated]
    if status is not None:
        where.append('"status" = ?')
        args.append(status)
    if task is not None:
        where.append('"task_id" = ?')
        args.append(task)
    if since is not None:
        where.append('"started_at" >= ?')
        args.append(since)
    if before is not None:
        at, run_id = decode_cursor(before)
        where.append('"started_at" <= ? AND ("started_at" < ? OR "id" < ?)')
        args += [at, at, run_id]
    sql = (f'SELECT {_RUN_COLS} FROM "runs"' + (" WHERE " + " AND ".join(where) if where else "")
           + ' ORDER BY "started_at" DESC, "id" DESC LIMIT ?')

    def body(conn: sqlite3.Connection) -> dict[str, Any]:
        rows = [dict(r) for r in conn.execute(sql, (*args, limit + 1))]
        more = len(rows) > limit
        rows = rows[:limit]
        following = encode_cursor(rows[-1]["started_at"] or "", rows[-1]["id"]) if more else None
        return {"runs": rows, "next": following, "position": _position(conn)}

    return _read(db_path, body, {"runs": [], "next": None, "position": None})


def get_run(db_path: Path, run_id: str) -> dict[str, Any] | None:
    """The run's row, its accounts in run order, its artifacts (by time), and ``position``; None if unknown."""

    def body(conn: sqlite3.Connection) -> dict[str, Any] | None:
        row = conn.execute('SELECT * FROM "runs" WHERE "id" = ?', (run_id,)).fetchone()
        if row is None:
            return None
        accounts = [dict(r) for r in conn.execute(
            'SELECT * FROM "run_accounts" WHERE "run_id" = ? ORDER BY "position", "account_id"', (run_id,))]
        artifacts = [dict(r) for r in conn.execute(
            'SELECT * FROM "artifacts" WHERE "run_id" = ? ORDER BY "ts", "path"', (run_id,))]
        return {"run": dict(row), "accounts": accounts, "artifacts": artifacts, "position": _position(conn)}

    return _read(db_path, body, None)


def _last_runs(conn: sqlite3.Connection, task_ids: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for task_id in task_ids:
        row = conn.execute(f'SELECT {_RUN_COLS} FROM "runs" WHERE "task_id" = ? '
                           'ORDER BY "started_at" DESC, "id" DESC LIMIT 1', (task_id,)).fetchone()
        if row is not None:
            out[task_id] = dict(row)
    return out


def last_runs(db_path: Path, task_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each task's latest run (by start), for the tasks that have one."""
    return _read(db_path, lambda conn: _last_runs(conn, task_ids), {})


def running_runs(db_path: Path) -> dict[str, str]:
    """``{run_id: task_id}`` of every run the tables show RUNNING."""

    def body(conn: sqlite3.Connection) -> dict[str, str]:
        return {r[0]: r[1] for r in conn.execute('SELECT "id", "task_id" FROM "runs" WHERE "status" = ?', ("RUNNING",))}

    return _read(db_path, body, {})


# -- accounts ----------------------------------------------------------------------------------
def success_rate(warm_count: int | None, fail_count: int | None) -> float | None:
    """Completed / (completed + failed) over the account's runs; None before its first ending."""
    done, failed = warm_count or 0, fail_count or 0
    return done / (done + failed) if done + failed else None


def _accounts(conn: sqlite3.Connection, limit: int, recent: int, after: str | None) -> list[dict[str, Any]]:
    recent = max(0, min(recent, MAX_RECENT))
    out = []
    rows = conn.execute('SELECT "id", "last_status", "last_run_id", "last_error", "warmed_at", "warm_count", '
                        '"fail_count", "runs_count" FROM "accounts" WHERE "id" > ? ORDER BY "id" LIMIT ?',
                        (after or "", limit)).fetchall()
    for r in rows:
        item = dict(r)
        item["success_rate"] = success_rate(r["warm_count"], r["fail_count"])
        item["recent"] = [dict(x) for x in conn.execute(
            'SELECT "run_id", "status", "completed_at" FROM "run_accounts" WHERE "account_id" = ? '
            'ORDER BY rowid DESC LIMIT ?', (r["id"], recent))] if recent else []
        out.append(item)
    return out


def list_accounts(db_path: Path, *, limit: int = 1000, recent: int = 5, after: str | None = None
                  ) -> list[dict[str, Any]]:
    """Accounts by id (those after the id ``after``), each with its success rate and its ``recent``
    latest runs (newest first)."""
    return _read(db_path, lambda conn: _accounts(conn, limit, recent, after), [])


def accounts_page(db_path: Path, *, limit: int = 200, recent: int = 5, after: str | None = None) -> dict[str, Any]:
    """``list_accounts`` and the checkpoint ``position``, from one snapshot (for the accounts page);
    ``more`` is the ``after`` of the next page, None on the last."""

    def body(conn: sqlite3.Connection) -> dict[str, Any]:
        accounts = _accounts(conn, limit + 1, recent, after)
        more = accounts[limit - 1]["id"] if len(accounts) > limit else None
        return {"accounts": accounts[:limit], "more": more, "position": _position(conn)}

    return _read(db_path, body, {"accounts": [], "more": None, "position": None})


def tasks_page(db_path: Path, task_ids: list[str]) -> dict[str, Any]:
    """``last_runs`` and the checkpoint ``position``, from one snapshot (for the tasks page)."""
    return _read(db_path, lambda conn: {"last": _last_runs(conn, task_ids), "position": _position(conn)},
                 {"last": {}, "position": None})
