"""The projector: folds the log, from the checkpoint on, into the SQLite tables.

It is synchronous on purpose and refuses to run inside an asyncio event loop: the database belongs
to this process alone, never to the browser side (the original app called the ORM from inside
Playwright's loop and crashed with "You cannot call this from an async context").

One batch is one transaction::

    BEGIN IMMEDIATE                  -- the write lock: another projector waits here
    read the checkpoint              -- inside the lock, so never stale
    verify the log still matches it
    read complete lines after it, decode, fold into RowCache
    write the touched rows, then the new checkpoint
    COMMIT                           -- rows and checkpoint together, or neither

A bad line (not JSON, no envelope, unknown type or version, or an event that cannot apply) is
recorded in ``rejected_events`` and skipped, in the same transaction; ``strict`` stops there instead.
The log is only ever read.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from warmup.errors import SCOPED_REFUSAL, UsageError, WarmupError, no_log
from warmup.events.envelope import DEEP_BYTES, EventDecoder, InvalidEvent, check_line
from warmup.events.logfile import open_log
from warmup.events.reader import read_block
from warmup.paths import make_private_dir
from warmup.projections.core.handlers import Handlers, Reject
from warmup.projections.core.rows import RowCache
from warmup.projections.core.schema import CHECKPOINT, PROJECTION_VERSION, create_all, create_indexes
from warmup.projector import checkpoint as cp
from warmup.projector.scope import Scope
from warmup.sqlite_errors import (
    LockWaitExpired,
    explain_os_error,
    explain_sqlite_error,
    is_busy,
    remove_new_database,
)

REJECTED_LINE_CHARS = 1000
# How long to wait for another writer (a projector, a replay) before saying so; $WARMUP_LOCK_WAIT_S.
LOCK_WAIT_S = float(os.environ.get("WARMUP_LOCK_WAIT_S") or 60.0)
DEFAULT_BATCH_BYTES = 4 << 20  # ~20,000 events a transaction
READ_BYTES = 2 << 20  # one read of the log (a transaction may span several)


class StrictStop(WarmupError):
    """``--strict`` met an invalid line: the lines before it are applied, it and those after are not."""


class VersionMismatch(Exception):
    """The database was built by another projection version; it must be rebuilt by replay."""

    def __init__(self, found: int) -> None:
        super().__init__(found)
        self.found = found


@dataclass
class BatchResult:
    applied: int = 0
    rejected: int = 0
    offset: int = 0


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch folds.

    A batch allocates tens of thousands of dicts and events and creates no reference cycles, so
    the collector's passes (triggered by allocation counts) find nothing and cost ~7% of a replay.
    Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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


class Projector:
    """Projects ``log_path`` into ``db_path``. Use ``catch_up()``; close with ``close()``.

    ``scope`` limits a fresh build to some events (``warmup replay --until/--run``); it is recorded
    in the checkpoint, and a scoped database is never extended.

    ``fast=True`` is for building a fresh file that nobody else reads (replay): no journal, no
    fsync per batch. A crash then leaves a broken temporary file, which replay discards.
    """

    def __init__(
        self,
        log_path: str | os.PathLike[str],
        db_path: str | os.PathLike[str],
        *,
        strict: bool = False,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        fast: bool = False,
        scope: Scope | None = None,
    ) -> None:
        refuse_inside_event_loop()
        self.log_path = Path(log_path)
        self.db_path = Path(db_path)
        self.strict = strict
        self.batch_bytes = batch_bytes
        self.fast = fast
        self.scope = scope
        self.conn: sqlite3.Connection | None = None
        self.decode = EventDecoder()
        self._connect()

    # -- connection ----------------------------------------------------------------------------
    def _connect(self) -> None:
        try:
            created = create_private_file(self.db_path)
        except OSError as exc:
            raise explain_os_error(self.db_path, exc) from None
        conn = sqlite3.connect(self.db_path, isolation_level=None, timeout=LOCK_WAIT_S, check_same_thread=False)
        try:
            if self.fast:
                conn.execute("PRAGMA journal_mode=OFF")
                conn.execute("PRAGMA synchronous=OFF")
            else:
                # WAL: readers (status, Datasette...) and the projector never block each other.
                # NORMAL is durable across a crash of the process; a power cut may lose the last
                # batches, rows and checkpoint together, and they are applied again.
                enable_wal(conn)
                conn.execute("PRAGMA synchronous=NORMAL")
            self._inode = os.stat(self.db_path).st_ino
            self._ensure_schema(conn)
        except sqlite3.Error as exc:
            conn.close()
            if created and not is_busy(exc):  # (busy: another process uses the new file already)
                remove_new_database(self.db_path)  # a failed start leaves nothing behind
            raise locked_or_broken(self.db_path, exc) from None
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        self.rows = RowCache(conn)
        self.handlers = Handlers(self.rows)
        self._committed: tuple[int, int] | None = None  # (offset, events) this process committed last

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if CHECKPOINT.name in tables:
                found = cp.read(conn)
                if found is not None:
                    self._check_still_ours(found)
            elif tables:
                raise UsageError(
                    f"{self.db_path} already holds other tables and is not a warmup database; "
                    "choose another --db"
                )
            else:
                create_all(conn, indexes=not self.fast)  # a bulk build indexes once, at its end
                scope = self.scope.to_json() if self.scope else None
                cp.write(conn, cp.Checkpoint(log_path=str(self.log_path), scope=scope))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # (SQLite has already rolled back after SQLITE_FULL, for one)
                conn.execute("ROLLBACK")
            raise

    def create_indexes(self) -> None:
        """Add the secondary indexes a ``fast`` build left out (cheaper once at the end than per row)."""
        assert self.conn is not None
        self.conn.execute("BEGIN IMMEDIATE")
        create_indexes(self.conn)
        self.conn.execute("COMMIT")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self) -> Projector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_still_ours(self, checkpoint: cp.Checkpoint) -> None:
        """Refuse a database built by another projection version, or for another scope.

        Checked when connecting, and again whenever the checkpoint moved under us: a replay may
        have turned the database into a point-in-time picture that must not be extended.
        """
        if checkpoint.projection_version != PROJECTION_VERSION:
            raise VersionMismatch(checkpoint.projection_version)
        scope = self.scope.to_json() if self.scope else None
        if checkpoint.scope != scope:
            what = Scope.from_json(checkpoint.scope).describe() if checkpoint.scope else "the whole log"
            raise WarmupError(
                f"{self.db_path} was built by `warmup replay {what}`; it {SCOPED_REFUSAL}. "
                "Run `warmup replay` (without --until/--run) to rebuild the full tables."
            )

    def _db_was_swapped(self) -> bool:
        """True when another file is at our path since we opened it (someone moved or removed it).

        ``warmup replay`` copies into the database in place (see ``replay.swap_into_place``), so this
        only catches a file replaced by hand: we reopen the path rather than write to a ghost.
        """
        try:
            return os.stat(self.db_path).st_ino != self._inode
        except FileNotFoundError:
            return True

    # -- projecting ----------------------------------------------------------------------------
    def catch_up(self, should_stop: Callable[[], bool] = lambda: False) -> BatchResult:
        """Apply every complete line after the checkpoint, batch by batch, then return the totals."""
        total = BatchResult()
        try:
            fd = open_log(self.log_path)  # (a FIFO swapped in is refused, never blocks)
        except FileNotFoundError:
            raise UsageError(no_log(self.log_path)) from None
        try:
            while True:
                batch = self._one_batch(fd)
                if batch is None:
                    break
                total.applied += batch.applied
                total.rejected += batch.rejected
                total.offset = batch.offset
                if should_stop():
                    break
        finally:
            os.close(fd)
        return total

    def _one_batch(self, fd: int) -> BatchResult | None:
        """One transaction: returns what it applied, or None when the log held nothing new."""
        assert self.conn is not None
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")  # waits up to a minute for another writer
        except sqlite3.OperationalError as exc:
            raise locked_or_broken(self.db_path, exc) from None
        if self._db_was_swapped():
            conn.execute("ROLLBACK")
            self.close()
            self._connect()
            return self._one_batch(fd)
        try:
            checkpoint = cp.read(conn)
            if checkpoint is None:
                raise WarmupError(f"{self.db_path} has lost its checkpoint row; run `warmup replay`")
            if self._committed != (checkpoint.offset, checkpoint.events_applied):
                self.rows.clear()  # another projector wrote since our last commit: reload from the db
                self._check_still_ours(checkpoint)  # (or a replay, maybe a scoped one)
            cp.verify(checkpoint, fd, str(self.log_path))
            batch_start = checkpoint.offset
            lines, end = read_block(fd, batch_start, min(self.batch_bytes, READ_BYTES))
            if not lines:
                conn.execute("ROLLBACK")
                self._committed = (checkpoint.offset, checkpoint.events_applied)
                return None
            # A transaction may span several reads: small reads stay in the CPU's caches, while big
            # transactions rewrite each touched account row fewer times.
            result = BatchResult()
            with _no_cyclic_gc():
                while lines:
                    part = self._fold(lines, checkpoint)
                    result.applied += part.applied
                    result.rejected += part.rejected
                    result.offset = part.offset
                    if part.offset < end or checkpoint.offset - batch_start >= self.batch_bytes:
                        break  # (a strict stop, or the transaction is big enough)
                    lines, end = read_block(fd, checkpoint.offset, min(self.batch_bytes, READ_BYTES))
            self.rows.flush()
            checkpoint.log_path = str(self.log_path)
            checkpoint.head_sha256, checkpoint.tail_sha256 = cp.fingerprint(fd, checkpoint.offset)
            cp.write(conn, checkpoint)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self.rows.clear()
            self._committed = None
            if isinstance(exc, sqlite3.OperationalError):
                raise locked_or_broken(self.db_path, exc) from None
            raise
        self.rows.after_commit()
        self._committed = (checkpoint.offset, checkpoint.events_applied)
        if result.offset < end:  # strict mode stopped at a bad line
            raise self._strict_stop
        return result

    def _fold(self, lines: list[bytes], checkpoint: cp.Checkpoint) -> BatchResult:
        """Apply ``lines`` (starting at the checkpoint's offset) and advance the checkpoint.

        The hot loop: a million events must fold in about a second, so it calls msgspec's decoder
        directly and leaves only an odd line (old version, invalid) to ``EventDecoder.slow``, and it
        works out byte offsets only for the lines that need one (a rejected line, a strict stop).
        """
        fast, slow, fast_failures = self.decode.fast, self.decode.slow, EventDecoder.FAST_FAILURES
        deep_bytes, isascii = DEEP_BYTES, bytes.isascii
        handlers = self.handlers.by_type
        keep = self.scope.includes if self.scope is not None else None
        start = checkpoint.offset
        offsets: list[int] | None = None  # each line's start, computed at the first line that needs it
        bad: list[tuple[int, Exception]] = []
        skipped = 0
        last_good = -1
        stop_at = len(lines)
        for i, data in enumerate(lines):
            try:
                try:
                    event = fast(data)
                except fast_failures:
                    event = slow(data)  # an older version to upcast, or a line to reject
                else:
                    if len(data) > deep_bytes or not isascii(data):
                        check_line(data)  # (what msgspec skipped: see EventDecoder)
                if keep is not None and not keep(event):
                    skipped += 1
                    continue
                handlers[type(event)](event)
                last_good = i
            except (InvalidEvent, Reject) as exc:
                if self.strict:
                    stop_at = i
                    bad.append((i, exc))
                    break
                bad.append((i, exc))
        if bad:
            offsets = list(accumulate((len(x) + 1 for x in lines[:stop_at]), initial=start))
            if self.strict:
                i, exc = bad[-1]
                self._strict_stop = StrictStop(
                    f"invalid line at byte {offsets[i]} of {self.log_path}: {exc} "
                    "(--strict stops here; without it the line is recorded in rejected_events and skipped)"
                )
            else:
                self.rows.rejected.extend(
                    {"offset": offsets[i], "reason": str(exc),
                     "line": lines[i][:REJECTED_LINE_CHARS].decode("utf-8", "replace")}
                    for i, exc in bad
                )
        end = offsets[stop_at] if offsets is not None else start + sum(map(len, lines)) + len(lines)
        rejected = 0 if self.strict else len(bad)
        applied = stop_at - rejected - skipped
        if last_good >= 0:
            last = self.decode(lines[last_good])  # (once a batch: the last event applied, for the checkpoint)
            checkpoint.last_event_id, checkpoint.last_event_ts = last.id, last.ts
        checkpoint.offset = end
        checkpoint.events_applied += applied
        checkpoint.events_rejected += rejected
        return BatchResult(applied, rejected, end)
