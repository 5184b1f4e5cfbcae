"""Replay: rebuild every table from offset 0 into a new file, then swap it in atomically.

A reader of the old database never sees a half-built one: the new tables are built in
``<db>.replay-<pid>`` beside it (no journal, no fsync per batch: a crash only loses that
temporary file), then swapped in as one transaction (``swap_into_place``).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from warmup.errors import UsageError
from warmup.projector.projector import BatchResult, Projector, locked_or_broken
from warmup.projector.schema import CHECKPOINT
from warmup.projector.scope import Scope

REPLAY_BATCH_BYTES = 16 << 20


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def swap_into_place(new: Path, db_path: Path) -> None:
    """Make ``db_path`` hold exactly the tables of ``new``, atomically for its readers.

    A new path is simply renamed into place. An existing database is overwritten through SQLite's
    backup API, which copies every page in one write transaction: readers keep the snapshot they
    had until they start a new transaction, and a ``project --follow`` writing to it waits for the
    lock, then finds a checkpoint it did not write and reloads its cache. (A rename over a live
    database in WAL mode would be unsafe: its ``-wal`` and ``-shm`` files are found by name.)
    """
    if not db_path.exists():
        _fsync_path(new)
        os.replace(new, db_path)
        _fsync_path(db_path.parent, directory=True)
        return
    source = sqlite3.connect(new)
    target = sqlite3.connect(db_path, isolation_level=None, timeout=60.0)
    try:
        source.backup(target)  # all pages in one step; retries while another writer holds the lock
    except sqlite3.OperationalError as exc:
        raise locked_or_broken(db_path, exc) from None
    finally:
        source.close()
        target.close()


def refuse_foreign_database(db_path: Path) -> None:
    """``replay`` overwrites ``db_path``: only ever a warmup database (or an empty or new file)."""
    if not db_path.exists() or db_path.stat().st_size == 0:
        return
    if db_path.is_dir():
        raise UsageError(f"--db {db_path} is a directory; give the database file's path")
    try:
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=60.0)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{db_path} is not a SQLite database ({exc}); replay will not overwrite it") from None
    if tables and CHECKPOINT.name not in tables:
        raise UsageError(f"{db_path} holds other tables and is not a warmup database; replay will not overwrite it")


def replay(
    log_path: str | os.PathLike[str],
    db_path: str | os.PathLike[str],
    *,
    until: str | None = None,
    run_ids: tuple[str, ...] | list[str] = (),
) -> BatchResult:
    """Rebuild ``db_path`` from ``log_path``; returns what was applied and rejected.

    ``until`` keeps the events with ``ts`` up to and including that instant, ``run_ids`` the events
    of those runs: the database then shows that part of the past (see ``scope``).
    """
    scope = Scope.from_options(until, run_ids)
    log_path, db_path = Path(log_path), Path(db_path)
    if not log_path.is_file():
        raise UsageError(f"no event log at {log_path} (pass --log, or set WARMUP_LOG)")
    refuse_foreign_database(db_path)
    tmp = db_path.with_name(f"{db_path.name}.replay-{os.getpid()}")
    for leftover in (tmp, Path(f"{tmp}-journal")):
        leftover.unlink(missing_ok=True)
    try:
        # Large batches: a fresh build has no reader to keep waiting, and each batch rewrites the
        # accounts it touched, so fewer batches write fewer rows.
        with Projector(log_path, tmp, fast=True, scope=scope, batch_bytes=REPLAY_BATCH_BYTES) as projector:
            result = projector.catch_up()
            projector.create_indexes()
        swap_into_place(tmp, db_path)
    finally:
        tmp.unlink(missing_ok=True)
    return result
