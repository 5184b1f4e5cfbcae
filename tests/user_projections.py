"""Projections of a user's own, as docs/projections.md shows them: loaded by the tests with
``--projection tests.user_projections:CLASS`` (the CLI runs with the repository as its cwd)."""

from __future__ import annotations

import os
import sqlite3

from warmup.projection import Context, SQLiteProjection, on


class WarmCounts(SQLiteProjection):
    """The example of the issue: how many times each account completed, and when last."""

    name = "warm_counts"
    version = 1

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS warm (account_id TEXT PRIMARY KEY, n INTEGER, last_ts TEXT)")

    @on("account_finished")
    def finished(self, event, ctx: Context) -> None:  # type: ignore[no-untyped-def]
        if event.status == "COMPLETED":
            ctx.conn.execute(
                "INSERT INTO warm VALUES (?, 1, ?) ON CONFLICT(account_id) "
                "DO UPDATE SET n = n + 1, last_ts = excluded.last_ts",
                (event.account_id, event.ts))


class WarmCountsV2(WarmCounts):
    """The same name at another version: a database built by WarmCounts is rebuilt."""

    version = 2


class RunFactsSeen(SQLiteProjection):
    """What ctx says for each event it handles: the run's facts and the attempt, one row per event."""

    name = "facts_seen"

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, type TEXT, task_id TEXT, "
                     "task_name TEXT, run_status TEXT, attempt INTEGER)")

    @on("account_started", "account_finished", "run_finished")
    def any_event(self, event, ctx: Context) -> None:  # type: ignore[no-untyped-def]
        assert ctx.run is not None
        ctx.conn.execute("INSERT INTO seen VALUES (?, ?, ?, ?, ?, ?)", (
            event.id, type(event).__struct_config__.tag, ctx.run.task_id, ctx.run.task_name, ctx.run.status,
            ctx.attempt))


class FailsOnBob(SQLiteProjection):
    """Raises on bob's account_finished (unless $WARMUP_TEST_FIXED is set): a handler's bug."""

    name = "fails_on_bob"

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS finished (event_id TEXT PRIMARY KEY, account_id TEXT)")

    @on("account_finished")
    def finished(self, event, ctx: Context) -> None:  # type: ignore[no-untyped-def]
        ctx.conn.execute("INSERT INTO finished VALUES (?, ?)", (event.id, event.account_id))
        if event.account_id == "bob" and not os.environ.get("WARMUP_TEST_FIXED"):
            raise ZeroDivisionError("bob divided by zero")


class NotAProjection:
    name = "nope"


class CommitsInHandler(SQLiteProjection):
    """A handler that commits (a Django habit): refused, so the batch's transaction stays whole."""

    name = "commits"

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS committed (event_id TEXT PRIMARY KEY)")

    @on("account_finished")
    def finished(self, event, ctx: Context) -> None:  # type: ignore[no-untyped-def]
        ctx.conn.execute("INSERT INTO committed VALUES (?)", (event.id,))
        ctx.conn.commit()


class CreateRaises(SQLiteProjection):
    name = "create_raises"

    def create(self, conn: sqlite3.Connection) -> None:
        raise ValueError("no table for you")


class FinishedV1(SQLiteProjection):
    """Version 1 raises on its first event; version 2 adds a column: a bump before any batch committed."""

    name = "fin"
    version = 1

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS fin (event_id TEXT PRIMARY KEY)")

    @on("account_finished")
    def finished(self, event, ctx: Context) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("version 1 is broken")


class FinishedV2(SQLiteProjection):
    name = "fin"
    version = 2

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS fin (event_id TEXT PRIMARY KEY, status TEXT)")

    @on("account_finished")
    def finished(self, event, ctx: Context) -> None:  # type: ignore[no-untyped-def]
        ctx.conn.execute("INSERT INTO fin VALUES (?, ?)", (event.id, event.status))


class BadName(SQLiteProjection):
    name = 'we"ird'
