"""Appending to a NATS log (``warmup.log.nats``): publish, wait for the ack, retry with the same id.

Each line is published (without its newline) on its subject with ``Nats-Msg-Id`` = the event's id,
and ``append_line`` returns once JetStream acknowledged it. A publish that fails (no ack in time,
no responders while a cluster elects a leader, the connection down while a server restarts) is
retried with the same id, with backoff, until ``WARMUP_NATS_PUBLISH_TIMEOUT`` seconds (30); the
stream's duplicate window (2 minutes) makes the retries idempotent: a duplicate ack is success.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
import orjson
from nats.js.api import PubAck

from warmup.errors import UsageError
from warmup.events.writer import LogWriteError
from warmup.log.base import LogAppender
from warmup.log.nats_stream import subject_for

if TYPE_CHECKING:
    from warmup.log.nats import NatsLog

PUBLISH_TIMEOUT_ENV = "WARMUP_NATS_PUBLISH_TIMEOUT"
DEFAULT_PUBLISH_TIMEOUT_S = 30.0


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
