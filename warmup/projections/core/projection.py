"""The core projection: warmup's own tables, registered like any other projection, and the log's validator.

It is a ``SQLiteProjection`` named ``core`` whose checkpoint lives in ``warmup_checkpoints`` like any
other. What sets it apart is one role: its handlers are the log's validation. The runner calls them
first, for every event (``by_type[type(event)](event)``, raising ``Reject``), and only an event they
accepted reaches another projection. So the core must run beside every other projection, and the
tables it keeps (runs, their accounts, the ids applied to runs in flight) are what validation needs.

Its rows are folded in memory (``rows.RowCache``) and written once per batch (``flush``), before the
checkpoint, in the same transaction.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from warmup.events.envelope import RunFinished
from warmup.projection import RunFacts, SQLiteProjection
from warmup.projections.core.handlers import Handlers, Reject
from warmup.projections.core.rows import RowCache
from warmup.projections.core.schema import PROJECTION_VERSION, create_all, create_indexes

__all__ = ["CoreProjection", "Reject"]


class CoreProjection(SQLiteProjection):
    """tasks, accounts, runs, run_accounts, run_event_ids, artifacts, rejected_events.

    ``indexes=False`` leaves out the secondary indexes (a bulk build adds them once at its end,
    ``create_indexes``).
    """

    name = "core"
    version = PROJECTION_VERSION

    def __init__(self, *, indexes: bool = True) -> None:
        self.indexes = indexes
        self.rows: RowCache | None = None
        self.by_type: dict[type, Any] = {}
        self._facts: dict[tuple[str, str], RunFacts] = {}

    def create(self, conn: sqlite3.Connection) -> None:
        create_all(conn, indexes=self.indexes)

    def create_indexes(self) -> None:
        create_indexes(self.conn)

    def attach(self, conn: sqlite3.Connection) -> None:
        """Use ``conn`` (the runner's connection to the core database) from now on."""
        self.conn = conn
        self.rows = RowCache(conn)
        self.by_type = Handlers(self.rows).by_type
        self._facts.clear()

    # -- what the runner asks of the validator ---------------------------------------------------
    def clear(self) -> None:
        """Forget what is in memory (after an error, or when another process wrote): the db is the truth."""
        assert self.rows is not None
        self.rows.clear()
        self._facts.clear()

    def record_rejected(self, rejected: list[dict[str, Any]]) -> None:
        assert self.rows is not None
        self.rows.rejected.extend(rejected)

    def write_rows(self) -> None:
        assert self.rows is not None
        self.rows.flush()

    def after_commit(self) -> None:
        assert self.rows is not None
        self.rows.after_commit()
        if len(self._facts) > 10_000:
            self._facts.clear()

    def run_facts(self, event: Any) -> RunFacts | None:
        """The event's run as it stood just after the event applied, for an event of this batch.

        Worked out after the fold (only when a handler asks): a finished run takes no more events,
        so every accepted event of a run but its ``run_finished`` saw it RUNNING, and the run's row
        is in memory until the batch commits.
        """
        assert self.rows is not None
        run_id = getattr(event, "run_id", None)
        run = self.rows.runs.get(run_id) if run_id is not None else None
        if run is None:
            return None
        status = run["status"] if type(event) is RunFinished else "RUNNING"
        key = (run_id, status)
        facts = self._facts.get(key)
        if facts is None:
            facts = self._facts[key] = RunFacts(
                id=run_id, task_id=run["task_id"], task_name=run["task_name"], status=status,
                started_at=run["started_at"], accounts_total=run["accounts_total"],
            )
        return facts

    def attempt_now(self, event: Any) -> int | None:
        """The account's attempt, read during the fold for an account event that does not carry one."""
        assert self.rows is not None
        ra = self.rows.run_accounts.get(event.run_id, {}).get(event.account_id)
        return ra["attempts"] if ra is not None else None
