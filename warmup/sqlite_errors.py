"""What went wrong with a database, in one line for people, from SQLite's result code, never its text.

Invariant: **an SQLite or OS failure on the database is reported as what it is**, decided by
``sqlite3.Error.sqlite_errorcode`` (the extended result code, Python 3.11+) or ``OSError.errno``,
and by looking at the file system, not by matching message text:

- a database or folder that cannot be written (``SQLITE_READONLY``, ``SQLITE_CANTOPEN`` beside a
  read-only folder, ``EROFS``/``EACCES``): bad input, exit 2, with what to do;
- a full disk (``SQLITE_FULL``, ``ENOSPC``): a failure, exit 1;
- an I/O error: a failure, exit 1;
- a file that is not a database (``SQLITE_NOTADB``, ``SQLITE_CORRUPT``): bad input, exit 2.

Lock waits (``SQLITE_BUSY``/``SQLITE_LOCKED``) are the caller's to word (``is_busy``): only it
knows how long it waited. This module is for the database side only; the runner never imports it.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from warmup.errors import UsageError, WarmupError

# Primary result codes (<sqlite3.h>); an extended code's low byte is its primary code.
SQLITE_ERROR = 1
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_AUTH = 23
SQLITE_NOTADB = 26

MOVE_IT = "pass --db with a path in a writable folder, or make it writable"


def primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def is_busy(exc: sqlite3.Error) -> bool:
    """Another connection holds the lock (SQLITE_BUSY or SQLITE_LOCKED, any extended form)."""
    return isinstance(exc, LockWaitExpired) or primary_code(exc) in (SQLITE_BUSY, SQLITE_LOCKED)


def is_wal(db_path: Path) -> bool:
    """Whether the file's header says WAL (bytes 18 and 19 of the header are 2)."""
    try:
        with open(db_path, "rb") as f:
            header = f.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[:16] == b"SQLite format 3\x00" and header[18:20] == b"\x02\x02"


def why_not_writable(db_path: Path) -> str | None:
    """Why the file system will not let us write ``db_path`` or create files beside it, if it will not."""
    folder = db_path.parent
    while not os.path.lexists(folder) and folder.parent != folder:
        folder = folder.parent  # (a missing folder is created: the first one that exists must be writable)
    if not folder.is_dir():
        return f"{folder} is not a folder"
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"its folder {folder} is on a read-only file system"
    except OSError:
        pass
    if not os.access(folder, os.W_OK):
        return f"its folder {folder} is not writable"
    if db_path.exists() and not os.access(db_path, os.W_OK):
        return "the file is read-only"
    return None


def explain_sqlite_error(db_path: Path, exc: sqlite3.Error) -> WarmupError:
    """A one-line error for ``exc``, met on ``db_path`` (never a lock wait: see ``is_busy``)."""
    code = primary_code(exc)
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    if code in (SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_AUTH):
        reason = why_not_writable(db_path)
        if reason is not None:
            need = ""
            if code == SQLITE_CANTOPEN and is_wal(db_path):
                need = f" (a WAL database: SQLite must create {db_path.name}-wal and -shm beside it, even to read it)"
            return UsageError(f"cannot use the database {db_path}: {reason}{need}; {MOVE_IT}")
        if code == SQLITE_CANTOPEN:
            return UsageError(f"cannot open the database {db_path} ({name}: {exc}); check the path and its folder")
        return UsageError(f"cannot write the database {db_path} ({name}: {exc}); {MOVE_IT}")
    if code == SQLITE_FULL:
        return WarmupError(
            f"the disk holding the database {db_path} is full ({name}); nothing was half-written "
            "(the transaction rolled back): free some space and run the command again"
        )
    if code == SQLITE_IOERR:
        return WarmupError(f"an I/O error on the database {db_path} ({name}: {exc}); check the disk, then try again")
    if code in (SQLITE_NOTADB, SQLITE_CORRUPT):
        return UsageError(f"{db_path} is not a usable SQLite database ({name}: {exc}); choose another --db")
    return WarmupError(f"SQLite failed on the database {db_path} ({name}: {exc})")


def explain_os_error(db_path: Path, exc: OSError) -> WarmupError:
    """A one-line error for an OSError met while creating ``db_path`` (or a file beside it)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return WarmupError(
            f"the disk holding the database {db_path} is full; free some space and run the command again"
        )
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR):
        reason = why_not_writable(db_path) or exc.strerror
        return UsageError(f"cannot create the database {db_path}: {reason}; {MOVE_IT}")
    return WarmupError(f"cannot create the database {db_path}: {exc.strerror}")


class LockWaitExpired(sqlite3.OperationalError):
    """Raised by our own retry loops when another connection kept the lock too long (``is_busy``)."""


def remove_new_database(db_path: Path) -> None:
    """Remove a database file this process created and could not set up, with its -wal/-shm/-journal.

    Only for a file created by the caller a moment ago (nothing is left behind by a failed
    ``project`` or ``replay``); never for a database that existed before.
    """
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(f"{db_path}{suffix}")
        except OSError:
            pass
