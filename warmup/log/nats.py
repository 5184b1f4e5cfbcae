"""The JetStream backend: the event log is one NATS JetStream stream; positions are stream sequences.

- **URL** ``nats://HOST:PORT[,HOST:PORT...][/STREAM]`` (or ``tls://``), stream ``WARMUP`` by default
  (``nats_url``); credentials only from the file ``WARMUP_NATS_CREDS`` names, never from the URL.
- **Positions**: a position is the sequence of the last message read; ``START`` = 0. A batch's lines
  start at the previous line's sequence (the first at ``batch.start``) and end at their own.
- **Appending** publishes each line (without its newline) on its subject (``nats_stream``) with
  ``Nats-Msg-Id`` = the event's id, and waits for the ack (stored on the replicas: the file's fsync).
  A failed publish is retried with the same id until a deadline; JetStream drops the duplicate.
- **Reading** is a batched direct get (``$JS.API.DIRECT.GET``, no consumer): any position, any time.
- **Identity**: the fingerprint is ``<STREAM>@<created>``; ``verify`` refuses a stream re-created,
  shorter than the checkpoint, or missing messages before it (deleted, purged).
- **Watching**: a core subscription on the stream's subjects wakes a self-pipe (works before the
  stream exists); ``stop()`` writes to the same pipe (safe in a signal handler).
- Torn lines do not exist: a message is atomic.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nats.aio.client import Client
from nats.js import JetStreamContext

from warmup.errors import UsageError
from warmup.events.reader import Line
from warmup.log.base import (
    Batch,
    Log,
    LogMismatch,
    LogMissing,
    LogReader,
    Position,
)
from warmup.log.nats_append import NatsLogAppender
from warmup.log.nats_conn import NatsConnection, connection_for, note
from warmup.log.nats_follow import NatsLogFollower, NatsLogWatch
from warmup.log.nats_stream import (
    Fetched,
    StreamApi,
    merge_fetched,
    narrow_filters,
    run_subjects,
    stream_subjects,
    subject_for,
    subject_prefix,
    type_subjects,
)
from warmup.log.nats_url import NatsAuth, NatsTarget, load_auth, parse_nats_url

__all__ = [
    "NatsBatch",
    "NatsLog",
    "NatsLogAppender",
    "NatsLogFollower",
    "NatsLogReader",
    "NatsLogWatch",
    "run_subjects",
    "stream_subjects",
    "subject_for",
    "subject_prefix",
    "type_subjects",
]

T = TypeVar("T")
REPLAY_HINT = "Run `warmup replay` to rebuild the tables from this log."
REPLICAS_ENV = "WARMUP_NATS_REPLICAS"
READ_MAX_MSGS = 50_000
BACKWARD_WINDOW = 64
BACKWARD_WINDOW_MAX = 4096


@dataclass(frozen=True, eq=False)
class NatsBatch(Batch):
    """A ``Batch`` that also holds each line's stream sequence (``seqs[i]`` ends ``lines[i]``).
    Equal to any ``Batch`` with the same lines, start and end."""

    seqs: list[int] = field(default_factory=list)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Batch):
            return NotImplemented
        return (self.lines, self.start, self.end) == (other.lines, other.start, other.end)

    __hash__ = None  # type: ignore[assignment]


def _replicas(replicas: int | None) -> int:
    if replicas is None:
        raw = os.environ.get(REPLICAS_ENV, "").strip()
        if not raw:
            return 1
        try:
            replicas = int(raw)
        except ValueError:
            raise UsageError(f"{REPLICAS_ENV} must be a whole number, not {raw!r}") from None
    if not 1 <= replicas <= 5:
        raise UsageError(f"replicas must be 1 to 5, not {replicas}")
    return replicas


def _covers(pattern: str, subject: str) -> bool:
    """True if the subject filter ``pattern`` takes every subject ``subject`` (itself a filter) does."""
    want, have = subject.split("."), pattern.split(".")
    for i, token in enumerate(have):
        if token == ">":
            return len(want) > i
        if i >= len(want) or (token != "*" and token != want[i]) or (token != "*" and want[i] in ("*", ">")):
            return False
    return len(want) == len(have)


class NatsLog(Log):
    """The log in the stream a ``nats://`` URL names. Connects on first use (``connection``).

    ``replicas``: the stream's replicas when this process creates it (default ``WARMUP_NATS_REPLICAS``
    or 1). ``run_id``/``types``: a narrowed view (see ``narrowed``); positions are the whole stream's.
    """

    START: Position = 0

    def __init__(
        self,
        url: str,
        *,
        replicas: int | None = None,
        run_id: str | None = None,
        types: Collection[str] | None = None,
        auth: NatsAuth | None = None,
    ) -> None:
        self.target: NatsTarget = parse_nats_url(url)
        self.name = self.target.name
        self.stream = self.target.stream
        self.prefix = subject_prefix(self.stream)
        self.replicas = _replicas(replicas)
        self.auth = auth if auth is not None else load_auth()
        self.run_id = run_id
        self.types = frozenset(types) if types is not None else None
        self.filters = narrow_filters(self.prefix, run_id, self.types)
        self._conn: NatsConnection | None = None

    def __repr__(self) -> str:
        return f"NatsLog({self.name!r})"

    # -- the connection, for the lead's code (KV leases, work queues) --------------------------
    @property
    def connection(self) -> NatsConnection:
        """The process's shared connection to this log's servers (connected now if need be)."""
        if self._conn is None or self._conn.closed:
            self._conn = connection_for(self.target, self.auth)
        return self._conn

    @property
    def nc(self) -> Client:
        """The connected nats-py client (run its coroutines with ``call``)."""
        return self.connection.nc

    @property
    def js(self) -> JetStreamContext:
        """Its JetStream context (KV buckets, other streams: run coroutines with ``call``)."""
        return self.connection.js

    @property
    def api(self) -> StreamApi:
        conn = self.connection
        return StreamApi(conn.nc, self.stream, self.target.display_servers, conn.raw_handlers)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the connection's loop; its result (see ``NatsConnection.call``)."""
        return self.connection.call(coro, timeout=timeout)

    def info(self, deleted_details: bool = False) -> dict[str, Any] | None:
        """The stream's info now (``config``, ``created``, ``state``), None if there is no stream."""
        return self.call(self.api.info(deleted_details))

    def ensure_stream(self) -> dict[str, Any]:
        """Create the stream if missing (saying so on stderr once); its info."""
        info, created = self.call(self.api.create(stream_subjects(self.prefix), self.replicas), timeout=60)
        if created:
            note(f"created the stream {self.stream} on {self.target.display_servers} (replicas {self.replicas})")
        ours = stream_subjects(self.prefix)
        theirs = info.get("config", {}).get("subjects") or []
        if not any(_covers(pattern, ours) for pattern in theirs):
            raise UsageError(
                f"the stream {self.stream} on {self.target.display_servers} does not take the subjects {ours} "
                f"(it takes {', '.join(theirs) or 'none'}): it is not a warmup event log"
            )
        return info

    def missing_message(self) -> str:
        return f"no event log at {self.name}: the stream does not exist yet"

    # -- Log -----------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.info() is not None

    def reader(self) -> NatsLogReader:
        info = self.info()
        if info is None:
            raise LogMissing(self.missing_message())
        return NatsLogReader(self, str(info.get("created", "")))

    def watch(self) -> NatsLogWatch:
        return NatsLogWatch(self)

    def follower(self, position: Position) -> NatsLogFollower:
        return NatsLogFollower(self, position)

    def appender(self, *, fsync: str = "always") -> NatsLogAppender:  # (every message is acked: durable)
        self.ensure_stream()
        return NatsLogAppender(self)

    def narrowed(self, *, run_id: str | None = None, types: Collection[str] | None = None) -> NatsLog:
        view = NatsLog.__new__(NatsLog)
        view.__dict__.update(self.__dict__)
        view.run_id = run_id if run_id is not None else self.run_id
        view.types = frozenset(types) if types is not None else self.types
        view.filters = narrow_filters(self.prefix, view.run_id, view.types)
        return view

    def describe_position(self, position: Position) -> str:
        return f"sequence {position}"

    # -- reading (shared by reader and follower) -----------------------------------------------
    def fetch(self, seq: int, max_msgs: int, max_bytes: int | None, *, whole: bool = False) -> Fetched:
        """Messages from sequence ``seq`` on (of this view's subjects unless ``whole``), in order."""
        filters = None if whole else self.filters
        if filters is None or len(filters) == 1:
            return self.call(self.api.fetch(seq, max_msgs, max_bytes, filters[0] if filters else None))
        if not filters:
            return Fetched([], [], 0)
        api = self.api

        async def each() -> list[Fetched]:
            return list(await asyncio.gather(*(api.fetch(seq, max_msgs, max_bytes, f) for f in filters)))

        return merge_fetched(self.call(each()))

    def read_batch(self, position: Position, max_bytes: int) -> NatsBatch:
        """Messages after ``position`` (about ``max_bytes``, at least one if there is one)."""
        got = self.fetch(position + 1, READ_MAX_MSGS, max_bytes)
        if not got.seqs:
            return NatsBatch([], position, position, [])
        return NatsBatch(got.datas, position, got.seqs[-1], got.seqs)


class NatsLogReader(LogReader):
    """Reads the stream; ``created`` is the identity of the stream it opened."""

    def __init__(self, log: NatsLog, created: str) -> None:
        self.log = log
        self.name = log.name
        self.created = created

    def read(self, position: Position, max_bytes: int = 4 << 20) -> NatsBatch:
        return self.log.read_batch(position, max_bytes)

    def positions(self, batch: Batch) -> list[Position]:
        if isinstance(batch, NatsBatch):
            return [batch.start, *batch.seqs]
        if not batch.lines:
            return [batch.start]
        again = self.log.fetch(batch.start + 1, len(batch.lines), None)
        return [batch.start, *again.seqs[: len(batch.lines)]]

    def end(self) -> Position:
        info = self.log.info()
        return int(info["state"]["last_seq"]) if info else self.log.START

    def lines_backward(self, end: Position) -> Iterator[Line]:
        info = self.log.info()
        if info is None:
            return
        state = info["state"]
        first = max(1, int(state.get("first_seq", 1)))
        hi = min(end, int(state.get("last_seq", 0)))
        window = BACKWARD_WINDOW
        while hi >= first:
            lo = max(first, hi - window + 1)
            found: list[tuple[int, bytes]] = []
            seq = lo
            while seq <= hi:
                got = self.log.fetch(seq, hi - seq + 1, 8 << 20)
                if not got.seqs:
                    break
                found.extend((s, d) for s, d in zip(got.seqs, got.datas, strict=True) if s <= hi)
                seq = got.seqs[-1] + 1
            for s, data in reversed(found):
                yield Line(data, s - 1, s)
            hi = lo - 1
            window = min(window * 2, BACKWARD_WINDOW_MAX)

    def fingerprint(self, position: Position) -> str | None:
        if position == 0:
            return None
        return f"{self.log.stream}@{self.created}"

    def verify(self, position: Position, fingerprint: str | None) -> None:
        if position == 0:
            return
        log = self.log
        where = f"the log {log.name}"
        info = log.info(deleted_details=True)
        if info is None:
            raise LogMismatch(f"{where} no longer exists: it is not the log the database was built from. {REPLAY_HINT}")
        created = str(info.get("created", ""))
        theirs = fingerprint.partition("@")[2] if fingerprint and fingerprint.startswith(f"{log.stream}@") else None
        if theirs is None:
            raise LogMismatch(
                f"{where} is not the log the database was built from (its checkpoint names another log). {REPLAY_HINT}"
            )
        if theirs != created:
            raise LogMismatch(
                f"{where} was re-created (created {created}, the checkpoint's was {theirs}): "
                f"it is not the log the database was built from. {REPLAY_HINT}"
            )
        state = info["state"]
        last = int(state.get("last_seq", 0))
        if last < position:
            raise LogMismatch(
                f"{where} is shorter (sequence {last}) than the database's checkpoint "
                f"(sequence {position}). {REPLAY_HINT}"
            )
        deleted = [int(s) for s in state.get("deleted") or () if int(s) <= position]
        if int(state.get("first_seq", 1)) > 1 or deleted:
            raise LogMismatch(
                f"{where} lost messages before the database's checkpoint (sequence {position}): "
                f"they were deleted or purged. {REPLAY_HINT}"
            )

    def close(self) -> None:
        pass
