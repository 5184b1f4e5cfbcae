"""Opening a projection's SQLite database: WAL, a private file, one-line errors, never inside an event loop."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from warmup.errors import WarmupError
from warmup.paths import make_private_dir
from warmup.sqlite_errors import (
    LockWaitExpired,
    explain_os_error,
    explain_sqlite_error,
    is_busy,
    remove_new_database,
)

# How long to wait for another writer (a projector, a replay) before saying so; $WARMUP_LOCK_WAIT_S.
LOCK_WAIT_S = float(os.environ.get("WARMUP_LOCK_WAIT_S") or 60.0)


def enable_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode, waiting (up to LOCK_WAIT_S) while another connection is busy.

    Changing the journal mode needs the database to itself for a moment, and SQLite answers
    "database is locked" at once instead of calling the busy handler: so two projectors starting
    together on a new database would fail without this retry.
    """
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
        if time.monotonic() > deadline:
            raise LockWaitExpired("database is locked")
        time.sleep(0.02)


def locked_or_broken(db_path: Path, exc: sqlite3.Error) -> WarmupError:
    """A one-line error for an SQLite failure: a lock held too long, or what else it was (by its code)."""
    if is_busy(exc):
        return WarmupError(
            f"the database {db_path} stayed locked by another process for {LOCK_WAIT_S:.0f} s "
            "(another `warmup project` or `warmup replay`?); try again when it is done"
        )
    return explain_sqlite_error(db_path, exc)


def refuse_inside_event_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise WarmupError(
        "the projector is synchronous and must not run inside an asyncio event loop; "
        "run `warmup project` as its own process"
    )


def create_private_file(path: Path) -> bool:
    """Create ``path`` with mode 0600 (its folder 0700) if it does not exist; True if it was created."""
    make_private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    return True


def connect_sqlite(
    db_path: Path, *, fast: bool, prepare: Callable[[sqlite3.Connection], None]
) -> tuple[sqlite3.Connection, int]:
    """Open ``db_path`` (created 0600 if missing), run ``prepare(conn)`` in a write transaction; (conn, inode).

    WAL: readers (status, Datasette...) and the projector never block each other. NORMAL is durable
    across a crash of the process; a power cut may lose the last batches, rows and checkpoint
    together, and they are applied again. ``fast`` (a fresh file nobody else reads): no journal, no
    fsync. A failed start removes the file if it created it, and leaves nothing behind.
    """
    try:
        created = create_private_file(db_path)
    except OSError as exc:
        raise explain_os_error(db_path, exc) from None
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=LOCK_WAIT_S, check_same_thread=False)
    try:
        if fast:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
        else:
            enable_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
        inode = os.stat(db_path).st_ino
        conn.execute("BEGIN IMMEDIATE")
        try:
            prepare(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # (SQLite has already rolled back after SQLITE_FULL, for one)
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        conn.close()
        if created and not is_busy(exc):  # (busy: another process uses the new file already)
            remove_new_database(db_path)
        raise locked_or_broken(db_path, exc) from None
    except BaseException:
        conn.close()
        raise
    return conn, inode
