"""Replay: rebuild every table from offset 0 into a new file, then swap it in atomically.

A reader of the old database never sees a half-built one: the new tables are built in
``<db>.replay-<pid>`` beside it (no journal, no fsync per batch: a crash only loses that
temporary file), then swapped in as one transaction (``swap_into_place``).

Nothing is left behind:

- a replay that fails removes its temporary file, and the database file if it created it;
- a replay that was killed cannot, so the next replay into the same database removes every
  ``<db>.replay-<pid>`` whose process is gone (``remove_stale_builds``; one of a live process, another
  replay at work, is left alone);
- a folder that cannot be written is refused before anything is created, saying why.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
import time
from pathlib import Path

from warmup.errors import UsageError, WarmupError
from warmup.locks import try_flock
from warmup.log import Log, require_log
from warmup.projection import CHECKPOINTS_TABLE, Projection, SQLiteProjection
from warmup.projector.connect import LOCK_WAIT_S, create_private_file, enable_wal, locked_or_broken
from warmup.projector.runner import BatchResult, ProjectionRunner, remove_validators
from warmup.projector.scope import Scope
from warmup.projector.specs import load_projection
from warmup.sqlite_errors import (
    MOVE_IT,
    SQLITE_BUSY,
    SQLITE_CORRUPT,
    SQLITE_LOCKED,
    SQLITE_NOTADB,
    LockWaitExpired,
    explain_os_error,
    is_busy,
    primary_code,
    remove_new_database,
    why_not_writable,
)

REPLAY_BATCH_BYTES = 16 << 20


def swap_into_place(new: Path, db_path: Path) -> None:
    """Make ``db_path`` hold exactly the tables of ``new``, atomically for its readers.

    Always through SQLite's backup API, which copies every page in one write transaction: readers
    keep the snapshot they had until they start a new transaction, and a ``project --follow``
    writing to the database waits for the lock, then finds a checkpoint it did not write.

    Never by renaming a file into place: the ``-wal`` and ``-shm`` files of a database are found by
    name, so a rename over a live one, or onto a path where a killed projector left a ``-wal``,
    would pair the new file with another file's pages. Backing up into an empty file is safe: SQLite
    discards a WAL it finds beside an empty database.

    ``new`` is opened read-only, so a build removed under us is an error, never an empty database
    created in its place and copied over the real one. A ``db_path`` this function created is
    removed again if the copy fails (unless another process is using it already).
    """
    try:
        created = create_private_file(db_path)
    except OSError as exc:
        raise explain_os_error(db_path, exc) from None
    source = sqlite3.connect(f"{new.resolve().as_uri()}?mode=ro", uri=True)
    target = sqlite3.connect(db_path, isolation_level=None, timeout=LOCK_WAIT_S)
    failed: sqlite3.Error | None = None
    deadline = time.monotonic() + LOCK_WAIT_S

    def give_up_when_locked_too_long(status: int, remaining: int, total: int) -> None:
        # CPython retries a busy backup forever; this turns a lock held too long into an error.
        if status in (SQLITE_BUSY, SQLITE_LOCKED) and time.monotonic() > deadline:
            raise LockWaitExpired("database is locked")

    try:
        source.backup(target, progress=give_up_when_locked_too_long)
        enable_wal(target)  # (the copied header says rollback journal)
    except sqlite3.Error as exc:
        failed = exc
    finally:
        source.close()
        target.close()
    if failed is not None:
        if created and not is_busy(failed):
            remove_new_database(db_path)  # nothing left behind
        raise locked_or_broken(db_path, failed) from None


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
    except sqlite3.Error as exc:
        if primary_code(exc) in (SQLITE_NOTADB, SQLITE_CORRUPT):
            raise UsageError(f"{db_path} is not a SQLite database ({exc}); replay will not overwrite it") from None
        raise locked_or_broken(db_path, exc) from None  # (a read-only folder, a lock...: said as it is)
    if tables and CHECKPOINTS_TABLE not in tables and "projector_checkpoint" not in tables:
        raise UsageError(f"{db_path} holds other tables and is not a warmup database; replay will not overwrite it")


def registered_in(db_path: Path) -> list[tuple[str, str | None]]:
    """(name, spec) of the projections other than core whose checkpoint is in ``db_path``."""
    if not db_path.is_file() or db_path.stat().st_size == 0:
        return []
    try:
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=LOCK_WAIT_S)
        try:
            return conn.execute(
                f'SELECT "name", "spec" FROM "{CHECKPOINTS_TABLE}" WHERE "name" != ? ORDER BY "name"', ("core",)
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []  # (no such table: an older or a new database)


def _beside_core(db_path: Path, given: list[Projection]) -> list[Projection]:
    """The projections a replay of ``db_path`` rebuilds with the core: those given, plus those already
    in it (found again by the spec their checkpoint recorded), so a replay never wipes them."""
    names = {p.name for p in given}
    found = []
    for name, spec in registered_in(db_path):
        if name in names:
            continue
        if not spec:
            raise UsageError(f"{db_path} holds projection {name!r} but not how to load it; "
                             "pass it with --projection MODULE:CLASS")
        try:
            projection = load_projection(spec)
        except UsageError as exc:
            raise UsageError(f"{db_path} holds projection {name!r}, which replay must rebuild too, and {exc}; "
                             "make it importable, or pass it with --projection") from None
        found.append(projection)
    return given + found


def replay(
    log_path: Log | str | os.PathLike[str],
    db_path: str | os.PathLike[str],
    *,
    until: str | None = None,
    run_ids: tuple[str, ...] | list[str] = (),
    projections: list[Projection] | None = None,
) -> BatchResult:
    """Rebuild ``db_path`` from ``log_path``; returns what was applied and rejected.

    ``until`` keeps the events with ``ts`` up to and including that instant, ``run_ids`` the events
    of those runs: the database then shows that part of the past (see ``scope``). The projections
    that live in ``db_path`` beside the core tables (and those given without a target of their own)
    are rebuilt with them.
    """
    scope = Scope.from_options(until, run_ids)
    log, db_path = require_log(log_path), Path(db_path)
    refuse_foreign_database(db_path)
    reason = why_not_writable(db_path)
    if reason is not None:
        raise UsageError(f"cannot replay into {db_path}: {reason}; {MOVE_IT}")
    remove_stale_builds(db_path)
    tmp = db_path.with_name(f"{db_path.name}{BUILD_SUFFIX}{os.getpid()}")
    for leftover in (tmp, Path(f"{tmp}-journal")):
        leftover.unlink(missing_ok=True)
    try:
        busy_fd = _hold_build(tmp)
    except OSError as exc:
        raise explain_os_error(tmp, exc) from None
    try:
        # Large batches: a fresh build has no reader to keep waiting, and each batch rewrites the
        # accounts it touched, so fewer batches write fewer rows.
        beside = _beside_core(db_path, [p for p in projections or () if _in_core_db(p)])
        with ProjectionRunner(log, tmp, beside, fast=True, scope=scope,
                              batch_bytes=REPLAY_BATCH_BYTES) as projector:
            result = projector.catch_up()
            projector.create_indexes()
            failures = projector.failures
        if failures:  # (the live database is left as it was)
            raise WarmupError("; ".join(failures) + f"; {db_path} is unchanged")
        swap_into_place(tmp, db_path)
        remove_validators(db_path)  # (built from the log as it was: the next catch-up builds them again)
    finally:
        for leftover in (tmp, Path(f"{tmp}-journal")):
            try:
                leftover.unlink(missing_ok=True)
            except OSError:
                pass  # (said by the error that is on its way; the next replay removes it)
        os.close(busy_fd)
    return result


def _in_core_db(projection: Projection) -> bool:
    return isinstance(projection, SQLiteProjection) and projection.target is None


BUILD_SUFFIX = ".replay-"


def _hold_build(tmp: Path) -> int:
    """Create the build file ``tmp`` (0600) and hold a ``flock`` on it while replay works: it is in use.

    SQLite's own locks are POSIX locks, which do not conflict with ``flock`` on Linux.
    """
    create_private_file(tmp)
    fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    fcntl.flock(fd, fcntl.LOCK_EX)  # (a new file: nobody else holds it)
    return fd


def remove_stale_builds(db_path: Path) -> list[Path]:
    """Remove the ``<db>.replay-<pid>`` files (and their -journal) of replays that are gone; returns them.

    A replay killed before its ``finally`` leaves its build behind (megabytes each). A build is
    gone when its pid is not a live process *and* nobody holds its ``flock`` (``_hold_build``):
    the pid alone could mislead across pid namespaces (containers sharing a folder), the flock
    alone across hosts. One that is in use is left alone (at worst a pid reused by another program
    keeps one file until that program ends).
    """
    removed: list[Path] = []
    prefix = db_path.name + BUILD_SUFFIX
    try:
        names = os.listdir(db_path.parent)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix) or name.endswith("-journal"):
            continue
        pid_text = name[len(prefix):]
        if not pid_text.isdigit() or pid_text.startswith("0") or _alive(int(pid_text)):
            continue
        build = db_path.parent / name
        if not _unheld(build):
            continue
        for path in (build, Path(f"{build}-journal")):
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue  # (another replay removed it first)
            removed.append(path)
    return removed


def _unheld(build: Path) -> bool:
    try:
        fd = os.open(build, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False  # (a symlink, or gone: not ours to remove)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return try_flock(fd)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
