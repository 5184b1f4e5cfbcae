"""Replay: rebuild every table from offset 0 into a new file, then swap it in atomically.

A reader of the old database never sees a half-built one: the new tables are built in
``<db>.replay-<pid>`` beside it (no journal, no fsync per batch: a crash only loses that
temporary file), then swapped in as one transaction (``swap_into_place``).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from warmup.errors import UsageError, no_log
from warmup.projector.projector import (
    LOCK_WAIT_S,
    BatchResult,
    Projector,
    create_private_file,
    enable_wal,
    locked_or_broken,
)
from warmup.projector.schema import CHECKPOINT
from warmup.projector.scope import Scope

REPLAY_BATCH_BYTES = 16 << 20
SQLITE_BUSY, SQLITE_LOCKED = 5, 6  # result codes a backup step reports while another writer holds the lock


def swap_into_place(new: Path, db_path: Path) -> None:
    """Make ``db_path`` hold exactly the tables of ``new``, atomically for its readers.

    Always through SQLite's backup API, which copies every page in one write transaction: readers
    keep the snapshot they had until they start a new transaction, and a ``project --follow``
    writing to the database waits for the lock, then finds a checkpoint it did not write.

    Never by renaming a file into place: the ``-wal`` and ``-shm`` files of a database are found by
    name, so a rename over a live one, or onto a path where a killed projector left a ``-wal``,
    would pair the new file with another file's pages. Backing up into an empty file is safe: SQLite
    discards a WAL it finds beside an empty database.
    """
    create_private_file(db_path)
    source = sqlite3.connect(new)
    target = sqlite3.connect(db_path, isolation_level=None, timeout=LOCK_WAIT_S)
    deadline = time.monotonic() + LOCK_WAIT_S

    def give_up_when_locked_too_long(status: int, remaining: int, total: int) -> None:
        # CPython retries a busy backup forever; this turns a lock held too long into an error.
        if status in (SQLITE_BUSY, SQLITE_LOCKED) and time.monotonic() > deadline:
            raise sqlite3.OperationalError("database is locked")

    try:
        source.backup(target, progress=give_up_when_locked_too_long)
        enable_wal(target)  # (the copied header says rollback journal)
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
        raise UsageError(no_log(log_path))
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
