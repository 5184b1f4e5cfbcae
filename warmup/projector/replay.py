"""Replay: rebuild every table from offset 0 into a new file, then swap it in atomically.

A reader of the old database never sees a half-built one: the new tables are built in
``<db>.replay-<pid>`` beside it (no journal, no fsync per batch: a crash only loses that
temporary file) and moved over the old path with ``os.replace``, a single atomic rename.

Before the rename, replay takes an EXCLUSIVE lock on the old database. That waits for any
projector's transaction to finish (and rolls back a hot journal a killed one left), and keeps
anyone from starting a new one until the rename is done, so no journal of the old file can be
left to be mistaken for the new file's. A ``project --follow`` still running on the old file sees
the new inode at its next batch and reopens (``Projector._db_was_swapped``).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from warmup.errors import UsageError
from warmup.projector.projector import BatchResult, Projector
from warmup.projector.scope import Scope

REPLAY_BATCH_BYTES = 16 << 20


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def swap_into_place(new: Path, db_path: Path) -> None:
    """Atomically replace ``db_path`` by ``new`` while holding the old database's write lock."""
    _fsync_path(new)
    if not db_path.exists():
        os.replace(new, db_path)
        _fsync_path(db_path.parent, directory=True)
        return
    old = sqlite3.connect(db_path, isolation_level=None, timeout=60.0)
    try:
        old.execute("BEGIN EXCLUSIVE")
        os.replace(new, db_path)
        _fsync_path(db_path.parent, directory=True)
        old.execute("ROLLBACK")
    finally:
        old.close()


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
