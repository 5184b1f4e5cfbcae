"""Appending to a NATS log (``warmup.log.nats``): publish, wait for the ack, retry with the same id.

Each line is published (without its newline) on its subject with ``Nats-Msg-Id`` = the event's id,
and ``append_line`` returns once JetStream acknowledged it. The publish and the wait run in the
calling thread on the appender's own blocking connection (``nats_sync``); only a JWT creds file
(nkey signing) takes nats-py's path through the shared connection's loop instead. A publish that fails (no ack in time,
no responders while a cluster elects a leader, the connection down while a server restarts) is
retried with the same id, with backoff, until ``WARMUP_NATS_PUBLISH_TIMEOUT`` seconds (30); the
stream's duplicate window (2 minutes) makes the retries idempotent: a duplicate ack is success.
"""

from __future__ import annotations

import asyncio
import errno
import threading
import time
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
import orjson
from nats.js.api import PubAck

from warmup.errors import WarmupError
from warmup.events.writer import LogWriteError
from warmup.log.base import LogAppender
from warmup.log.nats_conn import connect_failure
from warmup.log.nats_stream import subject_for
from warmup.log.nats_sync import TRY_TIMEOUT_S, Fatal, NatsSyncPublisher, Refused, Transient
from warmup.times import seconds_from_env

if TYPE_CHECKING:
    from warmup.log.nats import NatsLog

PUBLISH_TIMEOUT_ENV = "WARMUP_NATS_PUBLISH_TIMEOUT"
DEFAULT_PUBLISH_TIMEOUT_S = 30.0


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


class NatsLogAppender(LogAppender):
    """Publishes each line and waits for its ack; retries a failed publish with the same
    ``Nats-Msg-Id`` until ``WARMUP_NATS_PUBLISH_TIMEOUT`` (30 s), then raises ``LogWriteError``.

    ``last_seq`` is the stream sequence of the last acked line; ``last_ack`` its ``PubAck``;
    ``retries`` counts the tries that failed and were tried again.

    Invariants: one publish at a time (a lock around each, the retries included), so the lines of
    several threads are stored in the order their acks came; a retry keeps the msg id; every
    failure is one line (``LogWriteError`` EIO, or ``WarmupError`` for refused credentials) that
    never holds a credential. ``publisher`` is the blocking connection (None with a JWT creds file:
    then nats-py publishes); ``close()`` closes it (a later append connects again).
    """

    def __init__(self, log: NatsLog, timeout_s: float | None = None) -> None:
        self.log = log
        if timeout_s is None:
            timeout_s = seconds_from_env(PUBLISH_TIMEOUT_ENV, DEFAULT_PUBLISH_TIMEOUT_S, minimum=0.1)
        self.timeout_s = timeout_s
        self.last_ack: PubAck | None = None
        self.last_seq: int = 0
        self.retries = 0
        self._lock = threading.Lock()
        self.publisher: NatsSyncPublisher | None = None
        if "user_credentials" not in log.auth.kwargs():
            self.publisher = NatsSyncPublisher(log.target, log.auth)
            try:
                self.publisher.connect()
            except Refused as exc:
                raise WarmupError(connect_failure(log.target, log.auth, exc)) from None
            except Transient:
                pass  # (the first append connects again, and retries until its deadline)

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
        with self._lock:
            if self.publisher is not None:
                ack = self._publish_sync(self.publisher, subject, payload, msg_id)
            else:
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

    def _publish_sync(self, publisher: NatsSyncPublisher, subject: str, payload: bytes, msg_id: str | None) -> PubAck:
        """Tries (each at most ``TRY_TIMEOUT_S``) with backoff until the deadline; a ``Fatal``
        failure (it will never pass) ends at once."""
        deadline = time.monotonic() + self.timeout_s
        delay = 0.05
        while True:
            left = deadline - time.monotonic()
            try:
                try_s = max(0.1, min(TRY_TIMEOUT_S, left))
                found = publisher.publish_try(subject, payload, msg_id, self.log.stream, try_s)
                return PubAck.from_response(found)
            except Fatal as exc:
                raise self.failed(str(exc)) from None
            except Refused as exc:
                raise WarmupError(connect_failure(self.log.target, self.log.auth, exc)) from None
            except Transient as exc:
                if time.monotonic() + delay >= deadline:
                    raise self.failed(str(exc)) from None
                self.retries += 1
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def failed(self, why: str) -> LogWriteError:
        """The one-line error for a publish that failed for good, for the reason ``why``."""
        return LogWriteError(errno.EIO, f"cannot append to the event log {self.log.name}: {why}")

    def failure(self, exc: BaseException) -> LogWriteError:
        """The one-line error for a publish that failed for good."""
        return self.failed(_why(exc))

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
        if self.publisher is not None:
            self.publisher.close()
