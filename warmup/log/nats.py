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
import errno
import os
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import nats.js.errors
import orjson
from nats.js.api import PubAck

from warmup.errors import UsageError
from warmup.events.reader import Line
from warmup.events.writer import LogWriteError
from warmup.log.base import (
    Batch,
    Log,
    LogAppender,
    LogMismatch,
    LogMissing,
    LogReader,
    Position,
)
from warmup.log.nats_conn import NatsConnection, connection_for, note
from warmup.log.nats_follow import NatsLogFollower, NatsLogWatch
from warmup.log.nats_stream import (
    Fetched,
    StreamApi,
    narrow_filter,
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
    "run_subjects",
    "stream_subjects",
    "subject_for",
    "subject_prefix",
    "type_subjects",
]

REPLAY_HINT = "Run `warmup replay` to rebuild the tables from this log."
REPLICAS_ENV = "WARMUP_NATS_REPLICAS"
PUBLISH_TIMEOUT_ENV = "WARMUP_NATS_PUBLISH_TIMEOUT"
DEFAULT_PUBLISH_TIMEOUT_S = 30.0
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


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise UsageError(f"{name} must be more than 0, not {raw!r}")
    return value


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


def _why(exc: BaseException) -> str:
    """A short reason for a failed publish, never holding a credential (nats-py's texts hold none)."""
    if isinstance(exc, (asyncio.TimeoutError, nats.errors.TimeoutError)):
        return "no acknowledgement in time"
    if isinstance(exc, nats.errors.NoRespondersError):
        return "no stream answered (is the stream there, does its cluster have a leader?)"
    if isinstance(exc, (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError)):
        return "the connection to NATS is down"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
        self.filter = narrow_filter(self.prefix, run_id, self.types)
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
    def api(self) -> StreamApi:
        conn = self.connection
        return StreamApi(conn.nc, self.stream, self.target.display_servers, conn.raw_handlers)

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        return self.connection.call(coro, timeout=timeout)

    def info(self, deleted_details: bool = False) -> dict[str, Any] | None:
        """The stream's info now (``config``, ``created``, ``state``), None if there is no stream."""
        return self.call(self.api.info(deleted_details))

    def ensure_stream(self) -> dict[str, Any]:
        """Create the stream if missing (saying so on stderr once); its info."""
        info, created = self.call(self.api.create(stream_subjects(self.prefix), self.replicas), timeout=60)
        if created:
            note(f"created the stream {self.stream} on {self.target.display_servers} (replicas {self.replicas})")
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

    def appender(self) -> NatsLogAppender:
        self.ensure_stream()
        return NatsLogAppender(self)

    def narrowed(self, *, run_id: str | None = None, types: Collection[str] | None = None) -> NatsLog:
        view = NatsLog.__new__(NatsLog)
        view.__dict__.update(self.__dict__)
        view.run_id = run_id if run_id is not None else self.run_id
        view.types = frozenset(types) if types is not None else self.types
        view.filter = narrow_filter(self.prefix, view.run_id, view.types)
        return view

    def describe_position(self, position: Position) -> str:
        return f"sequence {position}"

    # -- reading (shared by reader and follower) -----------------------------------------------
    def fetch(self, seq: int, max_msgs: int, max_bytes: int | None, *, whole: bool = False) -> Fetched:
        subject = None if whole else self.filter
        return self.call(self.api.fetch(seq, max_msgs, max_bytes, subject))

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
        return [batch.start, *again.seqs]

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


class NatsLogAppender(LogAppender):
    """Publishes each line and waits for its ack; retries a failed publish with the same
    ``Nats-Msg-Id`` until ``WARMUP_NATS_PUBLISH_TIMEOUT`` (30 s), then raises ``LogWriteError``.

    ``last_seq`` is the stream sequence of the last acked line; ``last_ack`` its ``PubAck``.
    """

    def __init__(self, log: NatsLog, timeout_s: float | None = None) -> None:
        self.log = log
        if timeout_s is None:
            timeout_s = _env_float(PUBLISH_TIMEOUT_ENV, DEFAULT_PUBLISH_TIMEOUT_S)
        self.timeout_s = timeout_s
        self.last_ack: PubAck | None = None
        self.last_seq: int = 0
        self.retries = 0

    def subject_of(self, payload: bytes) -> tuple[str, str | None]:
        """The subject and the msg id of a line (tokens ``_`` and no id for a line that is not a JSON object)."""
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            return subject_for(self.log.prefix, None, None, None), None
        msg_id = obj.get("id")
        subject = subject_for(self.log.prefix, obj.get("run_id"), obj.get("account_id"), obj.get("type"))
        return subject, msg_id if isinstance(msg_id, str) and msg_id else None

    def append_line(self, line: bytes) -> None:
        payload = line[:-1] if line.endswith(b"\n") else line
        subject, msg_id = self.subject_of(payload)
        self.publish_raw(payload, msg_id, subject=subject)

    def publish_raw(self, payload: bytes, msg_id: str | None, *, subject: str | None = None) -> PubAck:
        """Publish ``payload`` as is with ``msg_id`` (retrying; a duplicate ack is success): the
        test hook for "the ack was lost, the writer publishes the same event again"."""
        if subject is None:
            subject = self.subject_of(payload)[0]
        conn = self.log.connection
        try:
            ack = conn.call(self._publish(subject, payload, msg_id), timeout=self.timeout_s + 15)
        except LogWriteError:
            raise
        except Exception as exc:
            raise self.failure(exc) from None
        self.last_ack = ack
        self.last_seq = ack.seq
        return ack

    def failure(self, exc: BaseException) -> LogWriteError:
        """The one-line error for a publish that failed for good."""
        return LogWriteError(errno.EIO, f"cannot append to the event log {self.log.name}: {_why(exc)}")

    async def _publish(self, subject: str, payload: bytes, msg_id: str | None) -> PubAck:
        js = self.log.connection.js
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        deadline = time.monotonic() + self.timeout_s
        delay = 0.05
        while True:
            left = deadline - time.monotonic()
            try:
                return await js.publish(
                    subject, payload, timeout=max(0.1, min(5.0, left)), stream=self.log.stream, headers=headers
                )
            except (TimeoutError, nats.errors.Error, OSError) as exc:
                fatal = isinstance(exc, nats.js.errors.APIError) and getattr(exc, "code", None) not in (None, 503)
                if fatal or time.monotonic() + delay >= deadline:
                    raise self.failure(exc) from None
                self.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    def close(self) -> None:
        pass
