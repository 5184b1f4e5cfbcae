"""The ``steps`` projection (opt-in: ``--projection steps``): one row per ``step_finished``.

It answers questions the core tables summarise away, in SQL: the slowest steps across runs, the
steps that fail most, how long a login takes on average::

    SELECT action, COUNT(*), AVG(duration_ms), MAX(duration_ms) FROM steps WHERE NOT skipped GROUP BY action;

A step its condition skipped has ``ok`` 1 and ``skipped`` 1: count it as neither ok nor failed.

Rows are buffered and written once per batch (``flush``), in the batch's transaction. The table is
indexed by run and account only: an index on the (random) event ids or on durations would cost
more to keep up at every insert than a scan of the table costs the rare query that needs one
(the core's validation already guarantees that an event id is applied once).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from warmup.projection import Context, SQLiteProjection, on

COLUMNS = ("event_id", "run_id", "account_id", "attempt", "step_index", "action", "ok", "optional",
           "duration_ms", "error", "url", "ts", "skipped")


class Steps(SQLiteProjection):
    name = "steps"
    version = 2  # 2: the skipped column

    def __init__(self) -> None:
        self._pending: list[tuple[Any, ...]] = []

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            'CREATE TABLE IF NOT EXISTS "steps" ("event_id" TEXT NOT NULL, "run_id" TEXT NOT NULL, '
            '"account_id" TEXT NOT NULL, "attempt" INTEGER, "step_index" INTEGER NOT NULL, "action" TEXT NOT NULL, '
            '"ok" INTEGER NOT NULL, "optional" INTEGER NOT NULL, "duration_ms" REAL NOT NULL, "error" TEXT, '
            '"url" TEXT, "ts" TEXT NOT NULL, "skipped" INTEGER NOT NULL DEFAULT 0)'
        )
        conn.execute('CREATE INDEX IF NOT EXISTS "steps_by_run" ON "steps" ("run_id", "account_id", "step_index")')

    @on("step_finished")
    def step(self, event: Any, ctx: Context) -> None:
        self._pending.append((
            event.id, event.run_id, event.account_id, ctx.attempt, event.index, event.action, event.ok,
            event.optional, event.duration_ms, event.error, event.url, event.ts, event.skipped,
        ))

    def flush(self, ctx: Context) -> None:
        pending, self._pending = self._pending, []
        if pending:
            ctx.conn.executemany(
                f'INSERT INTO "steps" ({", ".join(COLUMNS)}) VALUES ({", ".join("?" * len(COLUMNS))})', pending)

    def reset(self) -> None:
        self._pending = []
        super().reset()
