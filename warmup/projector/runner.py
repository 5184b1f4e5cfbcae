"""ProjectionRunner: reads the log in batches, validates each event once, hands the accepted ones to
every projection, and keeps each projection's checkpoint in the same transaction as its rows.

It knows nothing of any table. It knows two roles:

- the **validator**, the ``core`` projection (``warmup.projections.core``): its handlers see every
  event first and raise ``Reject`` for one that cannot apply; a rejected line is recorded and
  skipped (``strict`` stops there instead), and never reaches another projection;
- the **projections** given: each gets, in log order, the accepted events of the types it handles
  (``@on``); an event type it does not handle is simply not passed.

One batch::

    BEGIN IMMEDIATE on the core database       -- the write lock: another projector waits here
    read the core checkpoint, verify the log still matches it
    read complete lines after it; decode; validate and apply to the core rows (in memory)
    for each other projection:                  -- its own transaction (a savepoint if it shares
        load its checkpoint                     --  the core database), its write lock taken first
        apply the accepted events at or after its position, flush, save its checkpoint, commit
    write the core rows, then the core checkpoint; COMMIT

So every projection's rows and checkpoint commit together. Projections commit before the core: a
crash in between leaves a projection ahead of the core, never behind, and events before a
projection's own position are not passed to it again. A projection behind the core (new, rebuilt
after a version change or ``--rebuild``, stopped by an error earlier, or left behind because another
process moved the core) cannot be validated by the core's current state: it catches up first with a
validator of its own (``_catch_up_with_own_validator``), then joins the others.

A handler that raises stops its projection only: its transaction rolls back (its checkpoint stays
before the batch), the error is said once, naming the projection, the event and the handler's
error; the core and the other projections go on. ``failures`` lists what stopped.

It is synchronous on purpose and refuses to run inside an asyncio event loop.
"""

from __future__ import annotations

import fcntl
import gc
import glob
import hashlib
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warmup.errors import SCOPED_REFUSAL, UsageError, WarmupError
from warmup.events.envelope import DEEP_BYTES, EVENT_TYPES, AccountEvent, EventDecoder, InvalidEvent, check_line
from warmup.log.base import Batch, Log, LogMismatch, LogReader
from warmup.projection import Checkpoint, Context, Projection, SQLiteProjection, create_checkpoints_table
from warmup.projections.core.projection import CoreProjection, Reject
from warmup.projector.connect import (
    LOCK_WAIT_S,
    connect_sqlite,
    locked_or_broken,
    refuse_inside_event_loop,
)
from warmup.projector.scope import Scope
from warmup.sqlite_errors import is_busy

REJECTED_LINE_CHARS = 1000
DEFAULT_BATCH_BYTES = 4 << 20  # ~20,000 events a transaction
READ_BYTES = 2 << 20  # one read of the log (a transaction may span several)
SCRATCH_BATCH_BYTES = 16 << 20
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")  # a projection's name: it names its savepoint, its checkpoint
BEHIND_SUFFIX = ".behind-"  # the validator of projections behind the core: <db>.behind-<digest>

__all__ = ["LOCK_WAIT_S", "BatchResult", "ProjectionRunner", "StrictStop", "VersionMismatch"]


class StrictStop(WarmupError):
    """``--strict`` met an invalid line: the lines before it are applied, it and those after are not."""


class VersionMismatch(Exception):
    """The core database was built by another projection version; it must be rebuilt by replay."""

    def __init__(self, found: int) -> None:
        super().__init__(found)
        self.found = found


@dataclass
class BatchResult:
    applied: int = 0
    rejected: int = 0
    position: int = 0
    at_end: bool = False  # its last read reached the log's last complete line (as it was then)


class _HandlerFailed(Exception):
    def __init__(self, event: Any, error: BaseException) -> None:
        super().__init__(str(error))
        self.event, self.error = event, error


@dataclass
class _Slot:
    """A projection the runner feeds, with its dispatch table (event class -> bound handler)."""

    projection: Projection
    handlers: dict[type, Callable[[Any, Context], None]]
    spec: str
    failed: str | None = None
    lagging: bool = False
    checked: bool = False  # its position was compared with the core's since it last caught up


@dataclass
class _Accepted:
    """The events a batch accepted (only of the types some projection handles), with their facts."""

    # (index of its line among the transaction's reads, event)
    items: list[tuple[int, Any]] = field(default_factory=list)
    # the attempt of an account event that does not carry one (older logs), by its event id, read
    # during the fold (a later event of the batch may start another attempt)
    attempts: dict[str, int | None] = field(default_factory=dict)


def _deny_transaction_control(action: int, *args: object) -> int:
    if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


@contextmanager
def _no_transaction_control(conn: sqlite3.Connection | None) -> Iterator[None]:
    """While handlers run, a COMMIT, ROLLBACK or SAVEPOINT of theirs is refused ("not authorized"):
    the batch's transaction is the runner's, and a handler that ended it would commit its rows
    without its checkpoint (and the core's rows without theirs, when it shares the core's database)."""
    if conn is None:
        yield
        return
    conn.set_authorizer(_deny_transaction_control)
    try:
        yield
    finally:
        conn.set_authorizer(None)


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch folds (it finds no cycles and costs ~7%)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def spec_of(projection: Projection) -> str:
    """How ``warmup replay`` finds the class again: ``MODULE:CLASS`` (or a built-in's name)."""
    given = getattr(projection, "spec", None)
    if isinstance(given, str) and given:
        return given
    cls = type(projection)
    return f"{cls.__module__}:{cls.__qualname__}"


def handlers_of(projection: Projection) -> dict[type, Callable[[Any, Context], None]]:
    return {EVENT_TYPES[t]: getattr(projection, method) for t, method in type(projection).handlers.items()}


class ProjectionRunner:
    """Projects ``log`` into the core database ``db_path`` and into each of ``projections``.

    ``scope`` limits a fresh build to some events (``warmup replay --until/--run``); it is recorded
    in the checkpoints, and a scoped database is never extended. ``fast=True`` is for building a
    fresh file that nobody else reads (replay, the scratch validator): no journal, no fsync.
    ``rebuild``: names of projections to reset and rebuild from the log. ``say``: where notes go.
    """

    def __init__(
        self,
        log: Log,
        db_path: str | os.PathLike[str],
        projections: Iterable[Projection] = (),
        *,
        strict: bool = False,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        fast: bool = False,
        scope: Scope | None = None,
        rebuild: Iterable[str] = (),
        say: Callable[[str], None] = lambda message: None,
        _lent: bool = False,
    ) -> None:
        refuse_inside_event_loop()
        self.log = log
        self.log_path = log.name  # (for messages)
        self.db_path = Path(db_path)
        self.strict = strict
        self.batch_bytes = batch_bytes
        self.fast = fast
        self.scope = scope
        self.say = say
        self.decode = EventDecoder()
        self.core = CoreProjection(indexes=not fast)
        self.slots: list[_Slot] = []
        self._conns: dict[str, sqlite3.Connection] = {}  # other SQLite targets, by resolved path
        self._committed: tuple[int, int] | None = None
        self._strict_stop: StrictStop | None = None
        self.conn: sqlite3.Connection | None = None
        names = {"core"}
        for projection in projections:
            name = getattr(projection, "name", "")
            if not isinstance(name, str) or not name:
                raise UsageError(f"{spec_of(projection)} has no name: set `name = \"...\"` on the class")
            if not NAME.fullmatch(name):
                raise UsageError(f"{spec_of(projection)}: the name {name!r} must be letters, digits and _ only")
            if name in names:
                raise UsageError(f"two projections are named {name!r}: each needs a name of its own")
            names.add(name)
            self.slots.append(_Slot(projection, handlers_of(projection), spec_of(projection)))
        self._lent = _lent
        self._connect()
        try:
            rebuild = set(rebuild)
            for slot in self.slots:
                if _lent:  # (a scratch validator's: the projections are set up and checked already)
                    slot.checked = True
                else:
                    self._set_up(slot, slot.projection.name in rebuild)
        except BaseException:
            self.close()
            raise

    # -- connections ---------------------------------------------------------------------------
    def _connect(self, reconnect: bool = False) -> None:
        conn, inode = connect_sqlite(self.db_path, fast=self.fast, prepare=self._ensure_core)
        self.conn = conn
        self._inode = inode
        self.core.attach(conn)
        self._committed = None
        if reconnect and not self._lent:  # those sharing the core database follow it to the new file
            for slot in self.slots:
                if getattr(slot.projection, "_shares_core", False) and slot.failed is None:
                    slot.checked = False
                    self._set_up(slot, False)

    def _ensure_core(self, conn: sqlite3.Connection) -> None:
        """In a write transaction: create the core tables and checkpoint, or check the ones there."""
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "warmup_checkpoints" in tables:
            found = conn.execute('SELECT "version" FROM "warmup_checkpoints" WHERE "name" = ?', ("core",)).fetchone()
            if found is not None:
                if found[0] != CoreProjection.version:
                    raise VersionMismatch(found[0])
                self.core.conn = conn
                checkpoint = self.core.load_checkpoint()
                assert checkpoint is not None
                self._check_still_ours(checkpoint)
                return
        if "projector_checkpoint" in tables:  # (the table before version 5)
            row = conn.execute("SELECT projection_version FROM projector_checkpoint").fetchone()
            raise VersionMismatch(row[0] if row else 0)
        if tables - {"warmup_checkpoints", "warmup_projection_objects"}:
            raise UsageError(
                f"{self.db_path} already holds other tables and is not a warmup database; choose another --db"
            )
        self.core.conn = conn
        self.core.create_recorded()
        scope = self.scope.to_json() if self.scope else None
        self.core.save_checkpoint(Checkpoint(
            name="core", version=CoreProjection.version, position=self.log.START, log=self.log_path,
            scope=scope, spec="core"))

    def _target_conn(self, projection: SQLiteProjection) -> sqlite3.Connection:
        """The connection for a SQLiteProjection: the core's when it has no target of its own."""
        target = getattr(projection, "target", None)
        if target is None or _same_file(Path(target), self.db_path):
            projection._shares_core = True  # type: ignore[attr-defined]
            assert self.conn is not None
            return self.conn
        key = os.path.realpath(target)
        conn = self._conns.get(key)
        if conn is None:
            conn, _ = connect_sqlite(Path(target), fast=False, prepare=create_checkpoints_table)
            self._conns[key] = conn
        return conn

    def _set_up(self, slot: _Slot, rebuild: bool) -> None:
        """Connect, create, and check the version (a projection of another version is reset: rebuilt).

        A projection without a checkpoint gets one at START, carrying its version, in the same
        transaction as its tables: so a version bump is noticed even before its first batch. Any
        error of the projection's own code stops it (one line), not the runner.
        """
        projection = slot.projection
        try:
            if isinstance(projection, SQLiteProjection):  # (ours now, even if another runner had it before)
                projection.conn = self._target_conn(projection)
            projection.setup()
            with projection.transaction():
                if isinstance(projection, SQLiteProjection):
                    projection.create_recorded()
                found = projection.load_checkpoint()
                version = type(projection).version
                if found is not None and found.version != version:
                    self.say(f"projection {projection.name!r} was built by version {found.version}; this is "
                             f"version {version}: rebuilding it from the log")
                    projection.reset()
                    found = None
                elif rebuild and found is not None:
                    self.say(f"projection {projection.name!r}: rebuilding it from the log")
                    projection.reset()
                    found = None
                if found is None:
                    projection.save_checkpoint(Checkpoint(
                        name=projection.name, version=version, position=self.log.START, log=self.log_path,
                        spec=slot.spec, scope=self.scope.to_json() if self.scope else None))
        except (WarmupError, VersionMismatch):
            raise
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise locked_or_broken(self._where(projection), exc) from None
            self._stop(slot, f"cannot set it up in {projection.describe_target()}: {exc}")
        except Exception as exc:  # noqa: BLE001  (the projection's own code: it alone stops)
            self._stop(slot, f"cannot set it up: {type(exc).__name__}: {exc}")

    def _where(self, projection: Projection) -> Path:
        target = getattr(projection, "target", None)
        return Path(target) if target is not None else self.db_path

    def close(self) -> None:
        for slot in self.slots:
            try:
                slot.projection.close()
            except Exception:  # noqa: BLE001  (closing must not hide the error on its way)
                pass
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self) -> ProjectionRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def failures(self) -> list[str]:
        return [slot.failed for slot in self.slots if slot.failed]

    def create_indexes(self) -> None:
        """Add the secondary indexes a ``fast`` build left out (cheaper once at the end than per row)."""
        assert self.conn is not None
        self.conn.execute("BEGIN IMMEDIATE")
        self.core.create_indexes()
        self.conn.execute("COMMIT")

    def _check_still_ours(self, checkpoint: Checkpoint) -> None:
        """Refuse a core database built by another version, or for another scope (a partial replay)."""
        if checkpoint.version != CoreProjection.version:
            raise VersionMismatch(checkpoint.version)
        scope = self.scope.to_json() if self.scope else None
        if checkpoint.scope != scope:
            what = Scope.from_json(checkpoint.scope).describe() if checkpoint.scope else "the whole log"
            raise WarmupError(
                f"{self.db_path} was built by `warmup replay {what}`; it {SCOPED_REFUSAL}. "
                "Run `warmup replay` (without --until/--run) to rebuild the full tables."
            )

    def _db_was_swapped(self) -> bool:
        """True when another file is at our path since we opened it (moved or removed by hand)."""
        try:
            return os.stat(self.db_path).st_ino != self._inode
        except FileNotFoundError:
            return True

    # -- projecting ----------------------------------------------------------------------------
    def catch_up(self, should_stop: Callable[[], bool] = lambda: False) -> BatchResult:
        """Apply every complete line after the checkpoints, batch by batch, then return the totals."""
        total = BatchResult()
        with self.log.reader() as reader:
            self._catch_up_lagging(reader)
            while True:
                batch = self._one_batch(reader)
                if any(s.failed is None and (s.lagging or not s.checked) for s in self.slots):
                    self._catch_up_lagging(reader)  # (one fell behind, or another process moved the core)
                if batch is None:
                    break
                total.applied += batch.applied
                total.rejected += batch.rejected
                total.position = batch.position
                if batch.at_end or should_stop():
                    break  # (an append after the last read wakes a follower, which calls catch_up again)
        return total

    def _active(self) -> list[_Slot]:
        return [s for s in self.slots if s.failed is None and not s.lagging]

    def _catch_up_lagging(self, reader: LogReader) -> None:
        """Bring every projection behind the core up to (at least) the core, with a validator of its own.

        Checked at the start of each ``catch_up`` when the core moved since this runner last
        committed (another process projected: ``warmup run``'s projector beside a follower of your
        own, say), and when a batch finds a projection behind it.
        """
        if not self.slots:
            return
        core_now = self._peek_core()
        if (core_now.position, core_now.events_applied) != self._committed:
            for slot in self.slots:
                slot.checked = False
        for slot in self.slots:
            if slot.failed is None and not slot.checked:
                slot.checked = True
                position = self._position_of(slot)
                if position is not None and position < core_now.position:
                    slot.lagging = True
        lagging = [s for s in self.slots if s.lagging and s.failed is None]
        if not lagging:
            return
        for slot in lagging:
            slot.lagging = False
        self._catch_up_with_own_validator(lagging)

    def _position_of(self, slot: _Slot) -> int | None:
        """The projection's checkpoint position (START before its first batch); None if it cannot be read."""
        try:
            with slot.projection.transaction():
                found = slot.projection.load_checkpoint()
        except Exception as exc:  # noqa: BLE001  (its own target failed: it alone stops)
            self._stop(slot, f"cannot read its checkpoint: {exc}")
            return None
        return found.position if found is not None else self.log.START

    def validator_path(self, slots: list[_Slot]) -> Path:
        """The validator kept for projections behind the core: named by their names, beside the database."""
        digest = hashlib.sha256("\0".join(sorted(s.projection.name for s in slots)).encode()).hexdigest()[:12]
        return self.db_path.with_name(f"{self.db_path.name}{BEHIND_SUFFIX}{digest}")

    def _catch_up_with_own_validator(self, lagging: list[_Slot]) -> None:
        """Run ``lagging`` with a core of their own (``validator_path``) to the end of the log.

        The core's tables cannot validate an event for a projection behind them (a duplicate is
        known by the ids of runs in flight *at that event*), so these projections get a validator
        at their own position: a core database kept beside the main one for them, moved on each
        time they fall behind (so it costs the events since, not the whole log), and rebuilt from
        the start of the log when it is ahead of one of them (a rebuilt projection). Like the main
        core, it commits after them, so a crash leaves them ahead of it, never behind.
        """
        names = ", ".join(repr(s.projection.name) for s in lagging)
        path = self.validator_path(lagging)
        positions = [self._position_of(s) for s in lagging]
        if any(p is None for p in positions):
            lagging = [s for s, p in zip(lagging, positions, strict=True) if p is not None]
            positions = [p for p in positions if p is not None]
            if not lagging:
                return
        lowest = min(p for p in positions if p is not None)
        with _held(path):  # (two followers take turns on it; replay leaves a held one alone)
            scratch = self._open_validator(path, lagging, lowest)
            if lowest == self.log.START:
                self.say(f"projection {names} is behind the core tables: "
                         "bringing it up to date from the start of the log")
            try:
                scratch.catch_up()
                stopped = {s.projection.name: s.failed for s in scratch.slots if s.failed}
            finally:
                scratch._lend_back()
                scratch.close()
        for slot in lagging:
            slot.failed = stopped.get(slot.projection.name) or slot.failed

    def _open_validator(self, path: Path, lagging: list[_Slot], lowest: int) -> ProjectionRunner:
        """The validator at ``path``, if it is usable (not ahead of ``lowest``, built from this log);
        else a new one from the start of the log."""
        for attempt in (1, 2):
            scratch: ProjectionRunner | None = None
            try:
                scratch = ProjectionRunner(
                    self.log, path, [s.projection for s in lagging], strict=self.strict, scope=self.scope,
                    batch_bytes=SCRATCH_BATCH_BYTES, say=self.say, _lent=True)
                found = scratch._peek_core()
                if found.position <= lowest:
                    with self.log.reader() as reader:
                        reader.verify(found.position, found.fingerprint)
                    return scratch
            except (WarmupError, VersionMismatch):  # a broken, older or foreign file: ours to rebuild
                if attempt == 2:
                    raise
            if scratch is not None:
                scratch._lend_back()
                scratch.close()
            _remove_database(path)
        raise AssertionError("unreachable")

    def _lend_back(self) -> None:
        """Give lent projections back before closing: closing this runner must not close them."""
        for slot in self.slots:
            slot.projection = _Detached()

    def _peek_core(self) -> Checkpoint:
        assert self.conn is not None
        self.conn.execute("BEGIN")
        try:
            found = self.core.load_checkpoint()
        finally:
            self.conn.execute("ROLLBACK")
        if found is None:
            raise WarmupError(f"{self.db_path} has lost its core checkpoint; run `warmup replay`")
        return found

    def _stop(self, slot: _Slot, why: str) -> None:
        slot.failed = f"projection {slot.projection.name!r} stopped: {why}"
        self.say(slot.failed)

    def _one_batch(self, reader: LogReader) -> BatchResult | None:
        """One transaction: returns what it applied, or None when the log held nothing new."""
        assert self.conn is not None
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")  # waits up to a minute for another writer
        except sqlite3.OperationalError as exc:
            raise locked_or_broken(self.db_path, exc) from None
        if self._db_was_swapped():
            conn.execute("ROLLBACK")
            self.conn.close()
            self._connect(reconnect=True)
            return self._one_batch(reader)
        core = self.core
        try:
            checkpoint = core.load_checkpoint()
            if checkpoint is None:
                raise WarmupError(f"{self.db_path} has lost its core checkpoint; run `warmup replay`")
            if self._committed != (checkpoint.position, checkpoint.events_applied):
                core.clear()  # another projector wrote since our last commit: reload from the db
                for slot in self.slots:  # (and the projections may now be behind it: look again)
                    slot.checked = False
                self._check_still_ours(checkpoint)  # (or a replay, maybe a scoped one)
            reader.verify(checkpoint.position, checkpoint.fingerprint)
            batch_start, start_fingerprint = checkpoint.position, checkpoint.fingerprint
            active = self._active()
            wanted = {t for slot in active for t in slot.handlers}
            accepted = _Accepted() if wanted else None
            batch = reader.read(batch_start, min(self.batch_bytes, READ_BYTES))
            if not batch.lines:
                conn.execute("ROLLBACK")
                self._committed = (checkpoint.position, checkpoint.events_applied)
                return None
            # A transaction may span several reads: small reads stay in the CPU's caches, while big
            # transactions rewrite each touched account row fewer times.
            result = BatchResult()
            batches: list[Batch] = []  # the transaction's reads
            lines_before = 0
            read_bytes = 0  # (counted here: positions are opaque, never subtracted)
            with _no_cyclic_gc():
                while True:
                    batches.append(batch)
                    part = self._fold(reader, batch, checkpoint, accepted, wanted, lines_before)
                    lines_before += len(batch.lines)
                    got = sum(map(len, batch.lines)) + len(batch.lines)
                    read_bytes += got
                    # (less than asked for, and nothing complete after it: the log's end as of now)
                    result.at_end = got < min(self.batch_bytes, READ_BYTES) and batch.end >= reader.end()
                    result.applied += part.applied
                    result.rejected += part.rejected
                    result.position = part.position
                    if part.position != batch.end or read_bytes >= self.batch_bytes:
                        break  # (a strict stop, or the transaction is big enough)
                    if result.at_end:
                        break  # (no need to ask again: a follower is woken for what comes next)
                    batch = reader.read(checkpoint.position, min(self.batch_bytes, READ_BYTES))
                    if not batch.lines:
                        result.at_end = True
                        break
            fingerprint = reader.fingerprint(checkpoint.position)
            for slot in active:  # (every one, so that its checkpoint moves even with no event for it)
                self._feed(slot, reader, batches, accepted or _Accepted(), batch_start, start_fingerprint,
                           checkpoint, fingerprint)
            core.write_rows()
            checkpoint.log = self.log_path
            checkpoint.fingerprint = fingerprint
            core.save_checkpoint(checkpoint)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            core.clear()
            self._committed = None
            if isinstance(exc, sqlite3.OperationalError):
                raise locked_or_broken(self.db_path, exc) from None
            raise
        core.after_commit()
        self._committed = (checkpoint.position, checkpoint.events_applied)
        if self._strict_stop is not None:
            stop, self._strict_stop = self._strict_stop, None
            raise stop
        return result

    def _feed(self, slot: _Slot, reader: LogReader, batches: list[Batch], accepted: _Accepted, batch_start: int,
              start_fingerprint: str | None, core_cp: Checkpoint, fingerprint: str | None) -> None:
        """Apply this batch's accepted events to one projection, in its own transaction (or savepoint).

        Its checkpoint's counts are its own: the events it handled, the last of them. A checkpoint
        that is not the core's must still match the log (a --target built from another log is
        refused, not silently skipped).
        """
        projection, handlers = slot.projection, slot.handlers
        try:
            with projection.transaction() as conn:
                found = projection.load_checkpoint()
                position = found.position if found is not None else self.log.START
                if found is not None and (position, found.fingerprint) != (batch_start, start_fingerprint):
                    reader.verify(position, found.fingerprint)
                if position < batch_start:
                    slot.lagging = True  # (another projector moved the core without it): caught up next
                    return
                if position >= core_cp.position:
                    return  # ahead of this batch already (it committed before a crash of the core)
                items = accepted.items
                if position > batch_start:  # partly ahead: skip the events before its position
                    items = self._at_or_after(reader, batches, items, position)
                ctx = Context(projection, conn, self.core.run_facts, self._attempt_resolver(accepted))
                handled = 0
                last = None
                with _no_transaction_control(conn if isinstance(projection, SQLiteProjection) else None):
                    for _, event in items:
                        handler = handlers.get(type(event))
                        if handler is None:
                            continue
                        handled += 1
                        last = event
                        ctx._event = event
                        try:
                            handler(event, ctx)
                        except Exception as exc:
                            raise _HandlerFailed(event, exc) from exc
                    projection.flush(ctx)
                new = found or Checkpoint(name=projection.name, version=type(projection).version)
                new.version = type(projection).version
                new.position = core_cp.position
                new.fingerprint = fingerprint
                new.log = self.log_path
                new.events_applied += handled
                if last is not None:
                    new.last_event_id, new.last_event_ts = last.id, last.ts
                new.scope = core_cp.scope
                new.spec = slot.spec
                projection.save_checkpoint(new)
        except _HandlerFailed as failed:
            event, error = failed.event, failed.error
            tag = type(event).__struct_config__.tag
            self._stop(slot, f"its handler of {tag} event {event.id} raised {type(error).__name__}: {error}; "
                             "its checkpoint stays before that batch, the other projections go on")
        except LogMismatch as exc:
            self._stop(slot, f"{exc} (for this projection: `warmup replay --projection {slot.spec}` rebuilds it)")
        except (sqlite3.Error, WarmupError, OSError) as exc:
            self._stop(slot, f"writing to {projection.describe_target()} failed: {exc}")
        except Exception as exc:  # noqa: BLE001  (its flush or checkpoint code: it alone stops)
            self._stop(slot, f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _attempt_resolver(accepted: _Accepted) -> Callable[[Any], int | None]:
        attempts = accepted.attempts

        def attempt(event: Any) -> int | None:
            if not isinstance(event, AccountEvent):
                return None
            found = getattr(event, "attempt", None)
            return found if found is not None else attempts.get(event.id)

        return attempt

    @staticmethod
    def _at_or_after(reader: LogReader, batches: list[Batch], items: list[Any], position: int) -> list[Any]:
        """The accepted items whose line starts at or after ``position`` (item[0]: the line's index
        among all the lines of the transaction's reads)."""
        starts: list[int] = []
        for batch in batches:
            starts.extend(reader.positions(batch)[:-1])
        return [item for item in items if starts[item[0]] >= position]

    def _fold(self, reader: LogReader, batch: Batch, checkpoint: Checkpoint, accepted: _Accepted | None,
              wanted: set[type], lines_before: int) -> BatchResult:
        """Validate and apply ``batch`` (starting at the checkpoint's position) to the core, collect
        what other projections want, and advance the checkpoint.

        The hot loop: a million events must fold in about a second, so it calls msgspec's decoder
        directly and leaves only an odd line (old version, invalid) to ``EventDecoder.slow``, and it
        asks the log for line positions only when a line needs one (a rejected line, a strict stop).
        """
        fast, slow, fast_failures = self.decode.fast, self.decode.slow, EventDecoder.FAST_FAILURES
        deep_bytes, isascii = DEEP_BYTES, bytes.isascii
        handlers = self.core.by_type
        keep = self.scope.includes if self.scope is not None else None
        collect = accepted.items.append if accepted is not None else None
        attempts = accepted.attempts if accepted is not None else {}
        attempt_now = self.core.attempt_now
        lines = batch.lines
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
                if collect is not None and type(event) in wanted:
                    collect((lines_before + i, event))
                    if getattr(event, "attempt", 0) is None:
                        attempts[event.id] = attempt_now(event)
            except (InvalidEvent, Reject) as exc:
                bad.append((i, exc))
                if self.strict:
                    stop_at = i
                    break
        end = batch.end
        if bad:
            positions = reader.positions(batch)
            end = positions[stop_at]
            if self.strict:
                i, exc = bad[-1]
                self._strict_stop = StrictStop(
                    f"invalid line at {self.log.describe_position(positions[i])} of {self.log_path}: {exc} "
                    "(--strict stops here; without it the line is recorded in rejected_events and skipped)"
                )
            else:
                self.core.record_rejected([
                    {"position": positions[i], "reason": str(exc),
                     "line": lines[i][:REJECTED_LINE_CHARS].decode("utf-8", "replace")}
                    for i, exc in bad
                ])
        rejected = 0 if self.strict else len(bad)
        applied = stop_at - rejected - skipped
        if last_good >= 0:
            last = self.decode(lines[last_good])  # (once a batch: the last event applied, for the checkpoint)
            checkpoint.last_event_id, checkpoint.last_event_ts = last.id, last.ts
        checkpoint.position = end
        checkpoint.events_applied += applied
        checkpoint.events_rejected += rejected
        return BatchResult(applied, rejected, end)


@contextmanager
def _held(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``<path>.lock`` while a validator is used (SQLite's own locks are
    POSIX locks: they do not see it)."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_validators(db_path: Path) -> None:
    """Remove the validators kept beside ``db_path`` (``warmup replay``: the log may be another one);
    one in use by a follower is left alone (it is verified against the log before each use)."""
    for lock in db_path.parent.glob(f"{glob.escape(db_path.name)}{BEHIND_SUFFIX}*.lock"):
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            _remove_database(Path(str(lock)[: -len(".lock")]))
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


class _Detached(Projection):
    """Stands in for a projection lent to a scratch runner, so closing the scratch leaves it open."""

    name = "_detached"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
