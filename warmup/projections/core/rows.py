"""RowCache: the rows the projector is folding events into, loaded lazily, written back in batches.

Why a cache: one SQL statement per event runs at ~174k events/s here and sqlite-utils' per-row
``update()`` at ~1.8k/s, while parsing alone runs at ~940k/s. So events are folded into plain dicts
in memory and each touched row is written once per batch with one ``executemany`` per table.

What a flush writes: only the rows changed since the last commit, so a batch costs what its events
cost, not what the runs in flight have grown to (one run of 3,000 accounts in flight must not make
each commit rewrite 3,000 ``run_accounts`` rows). A run's event ids are append-only: a flush writes
only the chunks of ``run_event_ids`` that the ids applied since the last commit fall in (see
``IDS_PER_CHUNK``). The changed rows are known from marks:

- a run's row: its id in ``dirty_runs`` (run_started, account_finished, run_finished: the only
  events that change it);
- a ``run_accounts`` row: every account event that applies adds its id to its run's ids mapped to
  the row it changed (``seen[event_id] = ra``, the store the duplicate check needs anyway: so the
  hot path pays nothing for the mark), and the flush takes the rows of the ids applied since the
  last commit (the ids past ``ids_stored``), each once; a new run's rows (``put_run``), and those of
  a run that finished in the transaction (``close_run``: its ids are dropped), are listed in
  ``dirty_run_accounts``;
- accounts and tasks: their ids in ``dirty_accounts`` and the tasks' set.

Invariant: every row in memory that differs from its row in the database is marked (or the
transaction that changed it rolls back, and ``clear()`` forgets everything). Marks go only at
``after_commit`` (what they mark is committed: ``ids_stored`` moves past the ids) and at ``clear()``
(the database is the truth again and rows reload from it), so a rollback never loses a change the
tables should hold.

Loading is by run: the first event of a run not in memory loads the run's row, all its
``run_accounts`` rows and its ids (its ``run_event_ids`` chunks, in order) in three queries.
Accounts and tasks load one by one on first touch (a miss is remembered, so a new account costs
one query per projector process, not one per event).

The cache is only valid while this process is the database's sole writer. The projector checks that
inside each write transaction (the checkpoint is the one it committed last) and calls ``clear()``
otherwise, and after any error. After each commit, finished runs are evicted so memory stays
bounded by the runs in flight, not by the length of the log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from itertools import islice
from typing import Any

import orjson

from warmup.projections.core.schema import (
    ACCOUNTS,
    ARTIFACTS,
    REJECTED_EVENTS,
    RUN_ACCOUNTS,
    RUN_EVENT_IDS,
    RUNS,
    TASKS,
    Table,
)

Row = dict[str, Any]
# The ids applied to a run, in the order applied (a dict: an ordered set), each mapped to the
# run_accounts row its event changed (None for run_started's, and for ids loaded from the database:
# only the ids applied since the last commit need it; see "What a flush writes" above).
EventIds = dict[str, "Row | None"]


class ClosedRun(dict[str, "Row | None"]):
    """The ids of a finished run: none are kept, and every id is "in" it.

    A finished run takes no more events (every later event of it is rejected, see handlers), so
    its ids are no longer needed: ``run_event_ids`` holds the runs in flight only, and the hot
    path's ``id in seen`` test is all it takes to turn away an event of a finished run.
    """

    def __contains__(self, key: object) -> bool:
        return True

    def __setitem__(self, key: str, value: Row | None) -> None:
        raise AssertionError("a finished run takes no ids")


CLOSED = ClosedRun()


def pack_ids(ids: Collection[str]) -> bytes | str:
    """The ids as stored in ``run_event_ids.ids``: 16 bytes each when all are 32 lowercase hex digits.

    Exact both ways: ``unpack_ids(pack_ids(x)) == list(x)`` for any strings (anything else is JSON).
    """
    if not ids:
        return b""
    joined = "".join(ids)
    if set(map(len, ids)) == {32} and joined == joined.lower():
        try:
            packed = bytes.fromhex(joined)
        except ValueError:
            packed = b""
        if len(packed) == 16 * len(ids):  # (fromhex skips whitespace: then fewer bytes)
            return packed
    return orjson.dumps(list(ids)).decode()


def unpack_ids(stored: bytes | str | None) -> EventIds:
    if not stored:
        return {}
    if isinstance(stored, bytes):
        text = stored.hex()
        return dict.fromkeys(text[i:i + 32] for i in range(0, len(text), 32))
    return dict.fromkeys(orjson.loads(stored))


# A run's ids are stored in chunks of this many, in the order applied: chunk k holds ids
# k*IDS_PER_CHUNK .. (k+1)*IDS_PER_CHUNK-1 of the run. The cut depends on the ids alone, never on
# how the log was cut into batches, so the table stays a pure function of the log (increments ==
# one replay), and a flush rewrites at most one chunk it wrote before (the last, partly filled one):
# at most IDS_PER_CHUNK * 16 bytes (4 KiB) a run in flight, whatever the run's length.
IDS_PER_CHUNK = 256


def new_chunks(ids: EventIds, stored: int) -> list[tuple[int, list[str]]]:
    """The chunks (number, ids) to write so that ids ``stored`` .. ``len(ids)-1`` are stored.

    Takes the ids from the end of the dict (``reversed``), so it costs the ids written, not the
    ids the run holds: the last chunk written before is rewritten whole, the rest are new.
    """
    total = len(ids)
    first = stored // IDS_PER_CHUNK
    wanted = total - first * IDS_PER_CHUNK
    tail = list(islice(reversed(ids), wanted))
    tail.reverse()
    return [(first + k, tail[i:i + IDS_PER_CHUNK]) for k, i in enumerate(range(0, wanted, IDS_PER_CHUNK))]

_FINAL_RUN = frozenset({"COMPLETED", "FAILED", "INTERRUPTED"})
_MAX_CACHED_KEYS = 200_000  # accounts + tasks kept across batches before the cache starts afresh


class RowCache:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # Cleared in place, never rebound: Handlers keep direct references to these containers.
        self.runs: dict[str, Row | None] = {}
        self.run_accounts: dict[str, dict[str, Row]] = {}
        self.run_ids: dict[str, EventIds] = {}  # per run in memory: the ids applied to it
        # Per run in memory: how many of its ids (the first n of ``run_ids[run]``) the database holds
        # as of the last commit. Only ``after_commit`` advances it (from ``_ids_flushed``), so a batch
        # that rolls back leaves it true; ``clear()`` (after any error) forgets it with the ids.
        self.ids_stored: dict[str, int] = {}
        self._ids_flushed: dict[str, int] = {}  # what the current transaction's flush wrote, until commit
        self.accounts: dict[str, Row | None] = {}
        self.tasks: dict[str, Row | None] = {}
        # What changed since the last commit, besides the rows the new ids map to (see the module's
        # docstring): run ids, and run_accounts rows (a row may be listed twice: it is written once).
        self.dirty_runs: set[str] = set()
        self.dirty_run_accounts: list[Row] = []
        self.dirty_accounts: set[str] = set()
        self._dirty_tasks: set[str] = set()
        self.artifacts: list[Row] = []
        self._artifact_paths: set[str] = set()  # of ``artifacts``, not yet written
        self.rejected: list[Row] = []

    def clear(self) -> None:
        """Forget everything (the database is the truth again)."""
        for container in (
            self.runs, self.run_accounts, self.run_ids, self.ids_stored, self._ids_flushed, self.accounts, self.tasks,
            self.dirty_runs, self.dirty_run_accounts, self.dirty_accounts, self._dirty_tasks,
            self.artifacts, self._artifact_paths, self.rejected,
        ):
            container.clear()

    # -- loading -------------------------------------------------------------------------------
    def _select(self, table: Table, where: str, args: tuple[Any, ...]) -> list[Row]:
        cols = table.column_names
        names = ", ".join(f'"{c}"' for c in cols)
        sql = f'SELECT {names} FROM "{table.name}" WHERE {where}'
        return [dict(zip(cols, r, strict=True)) for r in self.conn.execute(sql, args)]

    def run(self, run_id: str) -> Row | None:
        """The run's row (with its accounts loaded), or None if the log has not started it."""
        try:
            return self.runs[run_id]
        except KeyError:
            pass
        found = self._select(RUNS, '"id" = ?', (run_id,))
        row = found[0] if found else None
        self.runs[run_id] = row
        if row is not None:
            self.run_accounts[run_id] = {
                ra["account_id"]: ra for ra in self._select(RUN_ACCOUNTS, '"run_id" = ?', (run_id,))
            }
            if row["status"] in _FINAL_RUN:
                self.run_ids[run_id] = CLOSED
            else:
                ids: EventIds = {}
                for (chunk,) in self.conn.execute(
                        'SELECT "ids" FROM "run_event_ids" WHERE "run_id" = ? ORDER BY "chunk"', (run_id,)):
                    ids.update(unpack_ids(chunk))
                self.run_ids[run_id] = ids
                self.ids_stored[run_id] = len(ids)
        return row

    def account(self, account_id: str) -> Row | None:
        try:
            return self.accounts[account_id]
        except KeyError:
            pass
        found = self._select(ACCOUNTS, '"id" = ?', (account_id,))
        row = self.accounts[account_id] = found[0] if found else None
        return row

    def task(self, task_id: str) -> Row | None:
        try:
            return self.tasks[task_id]
        except KeyError:
            pass
        found = self._select(TASKS, '"id" = ?', (task_id,))
        row = self.tasks[task_id] = found[0] if found else None
        return row

    def artifact_known(self, path: str) -> bool:
        """True if an artifact row for ``path`` exists, written or about to be (artifacts are rare)."""
        if path in self._artifact_paths:
            return True
        return self.conn.execute('SELECT 1 FROM "artifacts" WHERE "path" = ?', (path,)).fetchone() is not None

    # -- changing ------------------------------------------------------------------------------
    def add_artifact(self, row: Row) -> None:
        self.artifacts.append(row)
        self._artifact_paths.add(row["path"])

    def put_run(self, row: Row, accounts: dict[str, Row]) -> None:
        """A new run and its run_accounts rows, all marked changed."""
        self.runs[row["id"]] = row
        self.run_accounts[row["id"]] = accounts
        self.run_ids[row["id"]] = {}
        self.ids_stored[row["id"]] = 0
        self.dirty_runs.add(row["id"])
        self.dirty_run_accounts.extend(accounts.values())

    def close_run(self, run_id: str) -> None:
        """The run (in memory) has finished: drop its ids (see ClosedRun), keeping their marks.

        The rows its ids applied since the last commit map to are listed in ``dirty_run_accounts``
        (all the run's rows instead when there are more such ids than rows: a replay's long batches).
        """
        ids, accounts = self.run_ids[run_id], self.run_accounts[run_id]
        new = len(ids) - self.ids_stored.get(run_id, 0)
        if new > len(accounts):
            self.dirty_run_accounts.extend(accounts.values())
        elif new > 0:
            self.dirty_run_accounts.extend(filter(None, islice(reversed(ids.values()), new)))
        self.run_ids[run_id] = CLOSED

    def put_account(self, row: Row) -> None:
        self.accounts[row["id"]] = row
        self.dirty_accounts.add(row["id"])

    def put_task(self, row: Row) -> None:
        self.tasks[row["id"]] = row
        self._dirty_tasks.add(row["id"])

    def touch_task(self, task_id: str) -> None:
        self._dirty_tasks.add(task_id)

    # -- writing -------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every row changed since the last flush; the caller holds the transaction."""
        conn = self.conn

        def write(table: Table, rows: list[Row]) -> None:
            if rows:
                conn.executemany(table.insert_sql, map(table.values, rows))

        # Only the rows marked changed (a marked run is in memory: marks go with ``clear()``).
        write(RUNS, [self.runs[r] for r in self.dirty_runs])  # type: ignore[misc]
        # The runs in memory: the ids applied since the last commit (plus the rest of the last chunk
        # they fall in), and the run_accounts rows they map to; a run that finished no longer needs
        # its ids (see ClosedRun: ``close_run`` listed its rows). Each run is looked at, marked or not.
        run_ids, ids_stored, flushed, run_accounts = self.run_ids, self.ids_stored, self._ids_flushed, self.run_accounts
        flushed.clear()
        changed = self.dirty_run_accounts.copy()
        chunks: list[tuple[str, int, bytes | str]] = []
        closed: list[tuple[str]] = []
        for row in self.runs.values():
            if row is None:
                continue
            run_id = row["id"]
            ids = run_ids[run_id]
            if ids is CLOSED:
                closed.append((run_id,))
                continue
            stored = ids_stored.get(run_id, 0)
            new = len(ids) - stored
            if new > 0:
                accounts = run_accounts[run_id]
                if new > len(accounts):  # (a replay's long batches: most rows changed, many times)
                    changed.extend(accounts.values())
                else:
                    changed.extend(filter(None, islice(reversed(ids.values()), new)))
                chunks.extend((run_id, k, pack_ids(part)) for k, part in new_chunks(ids, stored))
                flushed[run_id] = len(ids)
        write(RUN_ACCOUNTS, list(dict(zip(map(id, changed), changed, strict=True)).values()))  # (each row once)
        conn.executemany(RUN_EVENT_IDS.insert_sql, chunks)
        conn.executemany('DELETE FROM "run_event_ids" WHERE "run_id" = ?', closed)
        write(ACCOUNTS, [self.accounts[a] for a in self.dirty_accounts])  # type: ignore[misc]
        write(TASKS, [self.tasks[t] for t in self._dirty_tasks])  # type: ignore[misc]
        write(ARTIFACTS, self.artifacts)
        write(REJECTED_EVENTS, self.rejected)

    def after_commit(self) -> None:
        """Forget what is written; evict finished runs so memory tracks the runs in flight.

        Only now (the transaction committed) do the stored id counts move to what the flush wrote.
        """
        self.ids_stored.update(self._ids_flushed)
        self._ids_flushed.clear()
        self.dirty_runs.clear()
        self.dirty_run_accounts.clear()
        self.dirty_accounts.clear()
        self._dirty_tasks.clear()
        self.artifacts.clear()
        self._artifact_paths.clear()
        self.rejected.clear()
        finished = [r for r, row in self.runs.items() if row is None or row["status"] in _FINAL_RUN]
        for run_id in finished:
            del self.runs[run_id]
            self.run_accounts.pop(run_id, None)
            self.run_ids.pop(run_id, None)
            self.ids_stored.pop(run_id, None)
        if len(self.accounts) + len(self.tasks) > _MAX_CACHED_KEYS:
            self.accounts.clear()
            self.tasks.clear()
