"""A trivial projection of one's own, for bench/projector.py: counts the accounts that completed."""

from __future__ import annotations

import sqlite3
from typing import Any

from warmup.projection import Context, SQLiteProjection, on


class CompletedCount(SQLiteProjection):
    name = "bench_completed"

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS completed (account_id TEXT PRIMARY KEY, n INTEGER NOT NULL)")

    @on("account_finished")
    def finished(self, event: Any, ctx: Context) -> None:
        if event.status == "COMPLETED":
            ctx.conn.execute("INSERT INTO completed VALUES (?, 1) ON CONFLICT(account_id) DO UPDATE SET n = n + 1",
                             (event.account_id,))
