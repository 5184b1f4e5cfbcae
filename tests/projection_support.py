"""Helpers for projector tests: build event lines, run the CLI, dump every table for comparison."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from warmup.events.envelope import encode, make_event

REPO = Path(__file__).resolve().parent.parent
TABLES = ("tasks", "accounts", "runs", "run_accounts", "run_event_ids", "artifacts", "rejected_events",
          "warmup_checkpoints")


def line(type_: str, ts: str = "2026-11-29T07:00:00.000000Z", **fields: Any) -> bytes:
    """One valid log line (built through make_event, so it passes the writer's checks)."""
    return encode(make_event(type_, ts=ts, **fields))


def ts(n: int) -> str:
    return f"2026-11-29T07:{n // 60 % 60:02d}:{n % 60:02d}.{n:06d}Z"


def run_lines(run_id: str, accounts: list[str], outcomes: dict[str, str], task_id: str = "morning") -> list[bytes]:
    """A whole run: each account starts, does two steps, and ends with its outcome."""
    n = 0

    def t() -> str:
        nonlocal n
        n += 1
        return ts(n)

    out = [line("run_started", t(), run_id=run_id, task_id=task_id, task_name="Morning", accounts=accounts,
                steps=2, concurrency=2, host="test", pid=1)]
    for a in accounts:
        status = outcomes.get(a, "COMPLETED")
        out.append(line("account_started", t(), run_id=run_id, account_id=a, attempt=1))
        out.append(line("step_finished", t(), run_id=run_id, account_id=a, index=0, action="goto", ok=True,
                        duration_ms=12.5, error=None))
        ok = status == "COMPLETED"
        out.append(line("step_finished", t(), run_id=run_id, account_id=a, index=1, action="click", ok=ok,
                        duration_ms=30.0, error=None if ok else "no #go on the page"))
        out.append(line("account_finished", t(), run_id=run_id, account_id=a, status=status,
                        error=None if ok else "step 1 click failed", attempt=1))
    final = "COMPLETED" if all(outcomes.get(a, "COMPLETED") == "COMPLETED" for a in accounts) else "FAILED"
    out.append(line("run_finished", t(), run_id=run_id, status=final))
    return out


def dump(db_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every projected table, sorted: two databases are equal when their dumps are."""
    conn = sqlite3.connect(db_path)
    try:
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in TABLES}
    finally:
        conn.close()


def rows(db_path: Path, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def warmup(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user does, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *map(str, args)],
        cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


def start_follower(log: Path, db: Path) -> subprocess.Popen[str]:
    """``warmup project --follow`` in the background, its stderr captured as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "project", "--follow", "--log", str(log), "--db", str(db)],
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )


def synthetic_log(directory: Path, n_events: int, seed: int) -> Path:
    """``directory/events.jsonl``: ``n_events`` realistic events from ``bench/synthetic_log.py``."""
    if str(REPO / "bench") not in sys.path:
        sys.path.append(str(REPO / "bench"))  # (last: bench/nats.py must not shadow the nats client)
    from synthetic_log import write_synthetic_log

    log = directory / "events.jsonl"
    write_synthetic_log(log, n_events, seed=seed)
    return log
