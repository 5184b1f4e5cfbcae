"""Projections of your own: tables (or models) derived from the event log, each exactly once.

The public API, documented in ``docs/projections.md``::

    from warmup.projection import Projection, SQLiteProjection, on

    class WarmCounts(SQLiteProjection):
        name = "warm_counts"      # unique; keys its checkpoint
        version = 1               # change it and the projection is rebuilt from the log

        def create(self, conn):   # create your tables (idempotent)
            conn.execute("CREATE TABLE IF NOT EXISTS warm (account_id TEXT PRIMARY KEY, n INTEGER)")

        @on("account_finished")
        def finished(self, event, ctx):
            ...

Invariants, enforced by the runner (``warmup.projector.runner``):

- **Validated once.** Every line is checked by the core projection first; an event it rejects (a
  duplicate, an event of a run nobody started, a bad field) never reaches a handler of yours.
- **Exactly once.** A projection's checkpoint is saved in the same transaction as the rows its
  handlers wrote (``transaction``, ``load_checkpoint``, ``save_checkpoint``), so a crash at any
  instant loses or repeats nothing: increments equal one replay.
- **Pure.** A handler sees the event and ``ctx`` only (the event's own time is ``event.ts``); what it
  writes must not depend on the clock or on how the log was cut into batches.
- **Synchronous, outside any event loop.** Handlers run in the projector's own process, never in
  the browser's, so a Django ORM call or a plain ``sqlite3`` write is simply allowed.
- **Isolated.** A handler that raises stops its own projection (its checkpoint stays before the
  batch), never the core tables or the other projections.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from warmup.events.envelope import EVENT_TYPES

__all__ = ["Checkpoint", "Context", "Projection", "RunFacts", "SQLiteProjection", "on"]

F = TypeVar("F", bound=Callable[..., Any])
_ON = "__warmup_on__"


def on(*event_types: str) -> Callable[[F], F]:
    """Mark a method as the handler of these event types: ``@on("account_finished")``.

    The method is called as ``handler(event, ctx)`` for each accepted event of those types, in log
    order. A type that is not an event type is refused when the class is defined.
    """
    unknown = [t for t in event_types if t not in EVENT_TYPES]
    if not event_types or unknown:
        raise TypeError(
            f"@on({', '.join(map(repr, event_types))}): "
            + (f"unknown event type {unknown[0]!r}; " if unknown else "name at least one event type; ")
            + f"the types are {', '.join(EVENT_TYPES)}"
        )

    def mark(method: F) -> F:
        setattr(method, _ON, tuple(getattr(method, _ON, ())) + event_types)
        return method

    return mark


@dataclass(frozen=True)
class RunFacts:
    """What the log says about the event's run, as of this event (after it applied)."""

    id: str
    task_id: str
    task_name: str
    status: str  # RUNNING until run_finished, then COMPLETED | FAILED | INTERRUPTED
    started_at: str
    accounts_total: int


class Context:
    """The second argument of every handler.

    ``conn``: the batch's open transaction (a ``sqlite3.Connection`` for a SQLiteProjection; what
    ``transaction()`` yields for another target). ``run``: the event's run as of this event
    (``RunFacts``; None for an event without a run). ``attempt``: for an account's event, the
    account's attempt (1, 2... with retries), else None. Both are worked out only when read.
    """

    __slots__ = ("projection", "conn", "_event", "_resolve_run", "_resolve_attempt")

    def __init__(self, projection: Projection, conn: Any = None,
                 resolve_run: Callable[[Any], RunFacts | None] | None = None,
                 resolve_attempt: Callable[[Any], int | None] | None = None) -> None:
        self.projection = projection
        self.conn = conn
        self._event: Any = None
        self._resolve_run = resolve_run or (lambda event: None)
        self._resolve_attempt = resolve_attempt or (lambda event: getattr(event, "attempt", None))

    @property
    def run(self) -> RunFacts | None:
        return self._resolve_run(self._event)

    @property
    def attempt(self) -> int | None:
        return self._resolve_attempt(self._event)


@dataclass
class Checkpoint:
    """How far into the log a projection is, saved with its rows.

    ``position`` is opaque (see ``warmup.log.base``); ``fingerprint`` identifies the log up to it.
    """

    name: str
    version: int
    position: int = 0
    fingerprint: str | None = None
    log: str | None = None
    events_applied: int = 0
    events_rejected: int = 0
    last_event_id: str | None = None
    last_event_ts: str | None = None
    scope: str | None = None  # NULL for the whole log; JSON {"until", "runs"} for a partial replay
    spec: str | None = None  # MODULE:CLASS, so `warmup replay` can rebuild it


class Projection:
    """The base of every projection, for any target: say how to open a transaction and how to load
    and save the checkpoint inside it, and write handlers with ``@on``.

    Subclasses set ``name`` (unique: it keys the checkpoint) and ``version`` (bump it when what the
    handlers write changes: the projection is then rebuilt from the log, with ``reset()`` first).
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    handlers: ClassVar[dict[str, str]] = {}  # event type -> method name (filled from @on by __init_subclass__)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                for event_type in getattr(value, _ON, ()):
                    found[event_type] = attr
        cls.handlers = found

    # -- the target: override these for a target that is not SQLite ----------------------------
    def setup(self) -> None:
        """Once, before the first batch: connect, create what must exist."""

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One batch's transaction: take the write lock at its start, commit at the end, roll back
        on an exception. Yields what handlers get as ``ctx.conn``."""
        raise NotImplementedError(f"{type(self).__name__} must define transaction()")
        yield  # pragma: no cover

    def load_checkpoint(self) -> Checkpoint | None:
        """Inside ``transaction()``: the saved checkpoint, or None before the first batch."""
        raise NotImplementedError(f"{type(self).__name__} must define load_checkpoint()")

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Inside ``transaction()``: save ``checkpoint`` (it commits with the rows)."""
        raise NotImplementedError(f"{type(self).__name__} must define save_checkpoint()")

    def reset(self) -> None:
        """Inside ``transaction()``: forget everything this projection wrote, and its checkpoint
        (a rebuild follows). Needed for a version bump or ``--rebuild``."""
        raise NotImplementedError(
            f"projection {self.name!r} cannot be rebuilt: {type(self).__name__} must define reset()"
        )

    def flush(self, ctx: Context) -> None:
        """At the end of each batch, before the checkpoint is saved: write what you buffered."""

    def close(self) -> None:
        """When the projector stops."""

    def describe_target(self) -> str:
        """Where this projection writes, for messages."""
        return type(self).__name__


CHECKPOINTS_TABLE = "warmup_checkpoints"
OBJECTS_TABLE = "warmup_projection_objects"  # the tables and indexes each SQLiteProjection's create() made
CHECKPOINT_COLUMNS = (
    "name", "version", "position", "fingerprint", "log", "events_applied", "events_rejected",
    "last_event_id", "last_event_ts", "scope", "spec",
)  # fmt: skip
_CREATE = (
    f"""CREATE TABLE IF NOT EXISTS "{CHECKPOINTS_TABLE}" (
    "name" TEXT PRIMARY KEY, "version" INTEGER NOT NULL, "position" INTEGER NOT NULL, "fingerprint" TEXT,
    "log" TEXT, "events_applied" INTEGER NOT NULL, "events_rejected" INTEGER NOT NULL, "last_event_id" TEXT,
    "last_event_ts" TEXT, "scope" TEXT, "spec" TEXT)""",
    f"""CREATE TABLE IF NOT EXISTS "{OBJECTS_TABLE}" (
    "projection" TEXT NOT NULL, "type" TEXT NOT NULL, "name" TEXT NOT NULL,
    PRIMARY KEY ("projection", "type", "name"))""",
)


def create_checkpoints_table(conn: sqlite3.Connection) -> None:
    """The checkpoint table (one row per projection) and the record of what each one created."""
    for sql in _CREATE:
        conn.execute(sql)


def read_sqlite_checkpoint(conn: sqlite3.Connection, name: str) -> Checkpoint | None:
    cols = ", ".join(f'"{c}"' for c in CHECKPOINT_COLUMNS)
    row = conn.execute(f'SELECT {cols} FROM "{CHECKPOINTS_TABLE}" WHERE "name" = ?', (name,)).fetchone()
    return Checkpoint(*row) if row else None


def write_sqlite_checkpoint(conn: sqlite3.Connection, cp: Checkpoint) -> None:
    cols = ", ".join(f'"{c}"' for c in CHECKPOINT_COLUMNS)
    conn.execute(
        f'INSERT OR REPLACE INTO "{CHECKPOINTS_TABLE}" ({cols}) VALUES ({", ".join("?" * len(CHECKPOINT_COLUMNS))})',
        (cp.name, cp.version, cp.position, cp.fingerprint, cp.log, cp.events_applied, cp.events_rejected,
         cp.last_event_id, cp.last_event_ts, cp.scope, cp.spec),
    )


class SQLiteProjection(Projection):
    """A projection into a SQLite database: ``--target PATH``, or the core database (``--db``).

    Write ``create(conn)`` (idempotent: CREATE TABLE IF NOT EXISTS...) and handlers that use
    ``ctx.conn``. The checkpoint lives in the ``warmup_checkpoints`` table of the same database, in
    the same transaction. A rebuild drops the tables and indexes ``create`` made (recorded the first
    time it ran), or whatever ``drop(conn)`` drops if you define it, then calls ``create`` again.

    The runner gives it its connection (``self.conn``) before ``setup``; projections that share a
    database share its transaction, each inside a savepoint of its own.
    """

    conn: sqlite3.Connection
    target: str | os.PathLike[str] | None = None  # None: the core database (--db)

    def create(self, conn: sqlite3.Connection) -> None:
        """Create your tables and indexes; called in a transaction, every start (so: IF NOT EXISTS)."""

    def drop(self, conn: sqlite3.Connection) -> None:
        """Remove what ``create`` made (for a rebuild). By default: the tables and indexes it created."""
        made = conn.execute(
            f'SELECT "type", "name" FROM "{OBJECTS_TABLE}" WHERE "projection" = ? ORDER BY "type" DESC',
            (self.name,)).fetchall()
        for kind, object_name in made:  # (indexes first)
            conn.execute(f'DROP {"INDEX" if kind == "index" else "TABLE"} IF EXISTS "{object_name}"')
        conn.execute(f'DELETE FROM "{OBJECTS_TABLE}" WHERE "projection" = ?', (self.name,))

    def create_recorded(self) -> None:
        """In a transaction: ``create(conn)``, remembering the tables and indexes it made (for ``drop``)."""
        conn = self.conn
        create_checkpoints_table(conn)
        listing = "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index') AND sql IS NOT NULL"
        before = set(conn.execute(listing).fetchall())
        self.create(conn)
        made = sorted(set(conn.execute(listing).fetchall()) - before)
        conn.executemany(
            f'INSERT OR IGNORE INTO "{OBJECTS_TABLE}" ("projection", "type", "name") VALUES (?, ?, ?)',
            [(self.name, kind, object_name) for kind, object_name in made],
        )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        if conn.in_transaction:  # sharing the core's (or another projection's) transaction
            savepoint = f'"p_{self.name}"'
            conn.execute(f"SAVEPOINT {savepoint}")
            try:
                yield conn
            except BaseException:
                conn.execute(f"ROLLBACK TO {savepoint}")
                conn.execute(f"RELEASE {savepoint}")
                raise
            conn.execute(f"RELEASE {savepoint}")
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def load_checkpoint(self) -> Checkpoint | None:
        return read_sqlite_checkpoint(self.conn, self.name)

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        write_sqlite_checkpoint(self.conn, checkpoint)

    def reset(self) -> None:
        self.drop(self.conn)
        self.conn.execute(f'DELETE FROM "{CHECKPOINTS_TABLE}" WHERE "name" = ?', (self.name,))
        self.create_recorded()

    def describe_target(self) -> str:
        return os.fspath(self.target) if self.target is not None else "the core database (--db)"
