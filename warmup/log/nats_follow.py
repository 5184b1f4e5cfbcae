"""Watching and following a NATS log (``warmup.log.nats``): a core subscription wakes a self-pipe.

The watch subscribes to the stream's subjects (a core subscription: it sees every publish, works
before the stream exists) and wakes a ``WakePipe``; ``stop()`` writes to the same pipe, so it is
safe in a signal handler. The follower reads with the log's batched direct get from its position
and checks the stream's identity (its creation time) on each wake-up.
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from warmup.events.follower import Notice, WakePipe
from warmup.events.reader import Line
from warmup.log.base import LogFollower, LogWatch, Position
from warmup.log.nats_stream import stream_subjects

if TYPE_CHECKING:
    from warmup.log.nats import NatsLog

SAFETY_RECHECK_S = 1.0  # re-check the stream this often even without a wake-up
REMOVAL_GRACE_S = 1.0  # a stream deleted and created again within this is one replacement
SETTLE_S = 0.2


class NatsLogWatch(LogWatch):
    """A core subscription on the stream's subjects writes to a self-pipe; ``stop`` writes too.

    Invariant: no missed wake-up after the constructor returns (the subscription is flushed to the
    server before), so a check-then-wait loop never sleeps through an append.
    """

    def __init__(self, log: NatsLog) -> None:
        self._wake = WakePipe()
        self._conn = log.connection
        subject = stream_subjects(log.prefix)
        wake = self._wake

        def on_raw(_headers: bytes | None, _data: bytes) -> None:
            wake.wake()  # one write to a pipe: no Msg object for each message of a busy stream

        async def subscribe() -> Any:
            sub = await self._conn.nc.subscribe(subject)
            self._conn.raw_handlers[sub._id] = on_raw
            await self._conn.nc.flush(timeout=5)
            return sub

        self._sub: Any = self._conn.call(subscribe())

    def wait(self, timeout_s: float) -> bool:
        """Wait as ``LogWatch.wait`` does; True if woken (an append or ``stop``), False on timeout."""
        if self._wake.fd < 0:
            return True
        poller = select.poll()
        poller.register(self._wake.fd, select.POLLIN)
        if poller.poll(max(0.0, timeout_s) * 1000):
            self._wake.drain()
            return True
        return False

    def stop(self) -> None:
        self._wake.wake()

    def close(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            self._conn.raw_handlers.pop(sub._id, None)
            try:
                self._conn.call(sub.unsubscribe(), timeout=5)
            except Exception:
                pass
        self._wake.close()


class NatsLogFollower(LogFollower):
    """Follows the stream from ``position`` (``tail -f``); notices mirror the file follower's:
    ``missing`` (waited for), ``created``, ``replaced`` (re-created: read from its start),
    ``truncated`` (shorter than what was read), ``removed`` (deleted: waited for)."""

    def __init__(self, log: NatsLog, position: Position) -> None:
        self.log = log
        self._pos = position
        self._stopped = False
        self._watch = log.watch()  # before the first read: no append is missed
        self._created: str | None = None
        self._removed = False
        self._settle = False

    @property
    def position(self) -> Position:
        return self._pos

    def stop(self) -> None:
        self._stopped = True
        self._watch.stop()

    def close(self) -> None:
        self._watch.close()

    def __iter__(self) -> Iterator[Line | Notice | None]:
        name = self.log.name
        info = self.log.info()
        if info is None:
            yield Notice("missing", f"{name}: the stream does not exist yet; waiting for it")
        else:
            self._created = str(info.get("created", ""))
        while True:
            if self._created is not None:
                yield from self._drain()
                # A stream is re-created and refilled message by message, not at once as a file
                # is renamed over: after a notice, read on until its writer pauses (SETTLE_S).
                while self._settle and not self._stopped and self._watch.wait(SETTLE_S):
                    yield from self._drain()
                self._settle = False
            yield None
            if self._stopped:
                return
            self._watch.wait(SAFETY_RECHECK_S)
            for notice in self._recheck():
                self._settle = True
                yield notice

    def _drain(self) -> Iterator[Line]:
        while True:
            batch = self.log.read_batch(self._pos, 4 << 20)
            if not batch.lines:
                return
            start = batch.start
            for data, seq in zip(batch.lines, batch.seqs, strict=True):
                self._pos = seq
                yield Line(data, start, seq)
                start = seq

    def _recheck(self) -> Iterator[Notice]:
        name = self.log.name
        info = self.log.info()
        if info is None and self._created is not None:
            deadline = time.monotonic() + REMOVAL_GRACE_S  # a delete-and-create is one replacement
            while info is None and time.monotonic() < deadline:
                time.sleep(0.05)
                info = self.log.info()
            if info is None:
                self._created = None
                self._removed = True
                yield Notice("removed", f"{name} was removed; waiting for it to come back")
                return
        if info is None:
            return
        created = str(info.get("created", ""))
        last = int(info["state"].get("last_seq", 0))
        if self._created is None:
            self._created = created
            self._pos = self.log.START
            if self._removed:
                self._removed = False
                yield Notice("created", f"{name} is back; reading it from its start")
            else:
                yield Notice("created", f"{name} appeared; following it")
        elif created != self._created:
            self._created = created
            self._pos = self.log.START
            yield Notice("replaced", f"{name} was re-created; reading the new stream from its start")
        elif last < self._pos:
            self._pos = self.log.START
            yield Notice("truncated", f"{name} is shorter than what was read; reading it again from its start")
