"""``EventHub``: one thread follows the log and fans its events out to the server's subscribers.

The hub is what ``GET /api/events`` (``warmup.serve.stream``) and the live pages read from.

- **One follower thread.** ``start()`` starts a thread that opens ``log.follower`` at the log's end
  (the file and the NATS backends alike) and hands each wake-up's lines to the asyncio loop with
  ``loop.call_soon_threadsafe`` (one call per batch: the follower yields ``None`` when caught up).
  Lines are decoded in that thread; an undecodable line is skipped, never fatal. A failing follower
  (a NATS server away) is logged and opened again from the last position after a pause.
- **Positions.** An item's ``position`` is the position just *past* its line (``Line.end``, the
  start of the next read): the one position both backends give the same line whatever view read
  it (a NATS narrowed view's ``Line.start`` is the previous message *of the view*). They grow along
  the log and are never computed here: "after P" is "read from P". ``position > last delivered`` is
  the whole no-duplicate rule.
- **Subscribing** (``subscribe``): history first, then live, no gap and no duplicate. The
  subscriber's queue is registered with the hub *before* the history is read (in a thread, from the
  log), so every line is either already in the log when the history is read or dispatched to the
  queue afterwards; the overlap is dropped by position. A resume whose ``after`` the ring buffer
  still covers is served from the buffer, without reading the log.
- **Back-pressure.** Each subscriber's queue is bounded (``queue`` items): a subscriber too slow to
  keep up is ended (``overflowed``), never the hub blocked; its client resumes from its last
  position and catches up from the log, losing nothing.
- **Stopping.** ``stop()`` stops the thread and ends every subscriber's stream at once (so uvicorn,
  which waits for open responses before its lifespan shutdown, can exit); ``aclose()`` also waits
  for the thread. A log that changes identity (a file truncated or replaced: positions start again)
  empties the buffer and ends every stream too.

Everything that touches subscribers or the buffer runs on the loop; the thread only reads the log.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import AsyncGenerator, Collection
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import anyio.to_thread
import orjson

from warmup.events.envelope import InvalidEvent, decode
from warmup.events.follower import Notice
from warmup.log.base import Log, LogFollower, LogMissing, Position

logger = logging.getLogger("warmup.serve")

BUFFER = 2_000  # recent events kept by the hub (a reconnect within them reads no log)
QUEUE = 5_000  # events a subscriber may have pending before it is ended as too slow
FLUSH_EVERY = 500  # lines handed to the loop at most per call, in a burst
HISTORY_BYTES = 256 << 10  # log bytes read per thread call for a history (the loop then sends them at once)
RETRY_S = 1.0  # pause before opening a failed follower again
RESET_NOTICES = frozenset({"truncated", "replaced", "created"})  # positions start again after these


class Item(NamedTuple):
    """One event: ``position`` (just past its line; the SSE id), the decoded ``event`` (current
    schema version), and ``data``, the event as one line of JSON (no newline, no CR)."""

    position: Position
    event: dict[str, Any]
    data: bytes


def item_of(line: bytes, position: Position) -> Item | None:
    """The line as an ``Item``, or None if it is not a valid event (a torn or foreign line)."""
    try:
        event = decode(line)
    except InvalidEvent:
        return None
    return Item(position, event, orjson.dumps(event))


@dataclass(eq=False)
class _Subscriber:
    """A subscriber's bounded queue, filled on the loop by ``EventHub._dispatch``."""

    run_id: str | None
    types: frozenset[str] | None
    limit: int
    pending: list[Item] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False
    overflowed: bool = False

    def wants(self, item: Item) -> bool:
        event = item.event
        return (self.run_id is None or event.get("run_id") == self.run_id) and (
            self.types is None or event.get("type") in self.types
        )

    def offer(self, items: list[Item]) -> None:
        if self.ended:
            return
        mine = [item for item in items if self.wants(item)]
        if not mine:
            return
        if len(self.pending) + len(mine) > self.limit:
            self.overflowed = True
            self.end()
            return
        self.pending.extend(mine)
        self.wake.set()

    def end(self) -> None:
        self.ended = True
        self.wake.set()

    def take(self) -> list[Item]:
        items, self.pending = self.pending, []
        self.wake.clear()
        return items


class EventHub:
    """Follows ``log`` in one thread and serves its events to ``subscribe``rs (see the module).

    ``buffer``: recent events kept; ``queue``: a subscriber's bound. ``start``, ``stop``,
    ``subscribe`` are called on the loop that serves the requests.
    """

    def __init__(self, log: Log, *, buffer: int = BUFFER, queue: int = QUEUE) -> None:
        self.log = log
        self.queue = queue
        self._buffer: deque[Item] = deque(maxlen=buffer)
        self._covered_from: Position | None = None  # every line after it is in the buffer (or coming)
        self._subscribers: set[_Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._follower: LogFollower | None = None
        self._follower_lock = threading.Lock()
        self._read_to: Position | None = None  # the thread's: just past the last line it read
        self._had_lines = False  # the thread's: a line was read (a log "created" then is a new one)
        self.stopped = False

    # -- life ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the follower thread (on the running loop; returns at once, reads nothing here)."""
        if self._thread is not None:
            raise RuntimeError("the hub is started already")
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._thread = threading.Thread(target=self._follow, name="warmup-event-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (without waiting for it) and end every subscriber's stream. Idempotent;
        from the loop's thread or any other."""
        self._stopping.set()
        with self._follower_lock:
            if self._follower is not None:
                self._follower.stop()
        loop = self._loop
        if loop is None:
            self.stopped = True
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._end_all()
        else:
            try:
                loop.call_soon_threadsafe(self._end_all)
            except RuntimeError:  # the loop is closed: no stream is open any more
                self.stopped = True

    async def aclose(self) -> None:
        """``stop()``, then wait (in a thread) for the follower thread to end."""
        self.stop()
        if self._thread is not None:
            await anyio.to_thread.run_sync(self._thread.join, 10.0)

    @property
    def subscribers(self) -> int:
        """How many streams are open now."""
        return len(self._subscribers)

    # -- the thread ----------------------------------------------------------------------------
    def _open_follower(self, position: Position | None) -> tuple[LogFollower, Position]:
        """A follower from ``position``, or from the log's end now if None (its start if no log)."""
        if position is not None:
            return self.log.follower(position), position
        try:
            reader = self.log.reader()
        except LogMissing:
            return self.log.follower(self.log.START), self.log.START
        try:
            end = reader.end()
        except BaseException:
            reader.close()
            raise
        return self.log.follower_from(reader, end), end

    def _follow(self) -> None:
        while not self._stopping.is_set():
            try:
                follower, self._read_to = self._open_follower(self._read_to)
            except Exception as exc:
                logger.error("event hub: cannot follow %s: %s; trying again", self.log.name, exc)
                self._stopping.wait(RETRY_S)
                continue
            with self._follower_lock:
                self._follower = follower
            if self._stopping.is_set():
                follower.stop()
            self._call(self._set_ready, self._read_to)
            try:
                self._pump(follower)
            except Exception as exc:
                logger.error("event hub: following %s failed: %s; trying again", self.log.name, exc)
                self._stopping.wait(RETRY_S)
            finally:
                with self._follower_lock:
                    self._follower = None
                follower.close()

    def _pump(self, follower: LogFollower) -> None:
        """Hand the follower's lines to the loop, a batch per wake-up; ``_read_to`` is just past the
        last line handed over (or being handed over when the follower fails: the batch goes first)."""
        batch: list[Item] = []
        try:
            for got in follower:
                if got is None or isinstance(got, Notice) or len(batch) >= FLUSH_EVERY:
                    if batch:
                        self._call(self._dispatch, batch)
                        batch = []
                if got is None:
                    continue
                if isinstance(got, Notice):
                    if got.kind in RESET_NOTICES:
                        self._read_to = self.log.START
                        if self._had_lines or got.kind != "created":
                            logger.warning("event hub: %s; open streams are ended", got.message)
                            self._call(self._reset, self.log.START)
                    continue
                self._had_lines = True
                self._read_to = got.end
                item = item_of(got.data, got.end)
                if item is not None:
                    batch.append(item)
        finally:
            if batch:
                self._call(self._dispatch, batch)

    def _call(self, fn: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # the loop closed meanwhile
                pass

    # -- on the loop ---------------------------------------------------------------------------
    def _set_ready(self, position: Position) -> None:
        if self._covered_from is None:
            self._covered_from = position
        assert self._ready is not None
        self._ready.set()

    def _dispatch(self, items: list[Item]) -> None:
        if self.stopped:
            return
        for item in items:
            if len(self._buffer) == self._buffer.maxlen:
                self._covered_from = self._buffer[0].position
            self._buffer.append(item)
        for sub in list(self._subscribers):
            sub.offer(items)
            if sub.ended:
                self._subscribers.discard(sub)
                if sub.overflowed:
                    logger.info("event hub: a stream more than %d events behind was ended (it may resume)", sub.limit)

    def _reset(self, position: Position) -> None:
        self._buffer.clear()
        self._covered_from = position
        for sub in self._subscribers:
            sub.end()
        self._subscribers.clear()

    def _end_all(self) -> None:
        self.stopped = True
        if self._ready is not None:
            self._ready.set()
        for sub in self._subscribers:
            sub.end()
        self._subscribers.clear()

    # -- subscribing ---------------------------------------------------------------------------
    async def subscribe(
        self,
        after: Position | None = None,
        run_id: str | None = None,
        follow: bool = True,
        *,
        types: Collection[str] | None = None,
        tail: int | None = None,
    ) -> AsyncGenerator[Item, None]:
        """The events after ``after`` (exclusive; see the module), then, with ``follow``, live ones.

        With ``after`` None: ``run_id``'s events from the log's start, or without ``run_id`` the
        last ``tail`` events (none by default). ``tail`` with ``run_id``: only its last ``tail``.
        ``types`` keeps those event types only. Ends after the history without ``follow``; with
        it, when the hub stops or the subscriber falls more than ``queue`` events behind.
        """
        batches = self.batches(after, run_id, follow, types=types, tail=tail)
        try:
            async for items in batches:
                for item in items:
                    yield item
        finally:
            await batches.aclose()  # (``async for`` leaves an abandoned generator open: close it now)

    async def batches(
        self,
        after: Position | None = None,
        run_id: str | None = None,
        follow: bool = True,
        *,
        types: Collection[str] | None = None,
        tail: int | None = None,
        idle_s: float | None = None,
    ) -> AsyncGenerator[list[Item], None]:
        """``subscribe``'s events a list at a time (as they come); an empty list after ``idle_s``
        seconds without any (a keep-alive), if given."""
        wanted = frozenset(types) if types is not None else None
        sub: _Subscriber | None = None
        from_buffer: list[Item] | None = None
        if follow:
            assert self._ready is not None, "start() the hub first"
            await self._ready.wait()
            if self.stopped:
                return
            sub = _Subscriber(run_id, wanted, self.queue)
            self._subscribers.add(sub)  # before the history is read: nothing falls in between
            covered = self._covered_from
            if after is not None and covered is not None and after >= covered:
                from_buffer = [item for item in self._buffer if item.position > after and sub.wants(item)]
        try:
            last = after if after is not None else -1
            if from_buffer is not None:
                if from_buffer:
                    last = from_buffer[-1].position
                    yield from_buffer
            else:
                async for items in self._history(after, run_id, wanted, tail):
                    items = [item for item in items if item.position > last]
                    if items:
                        last = items[-1].position
                        yield items
            if sub is None:
                return
            while True:
                items = [item for item in sub.take() if item.position > last]
                if items:
                    last = items[-1].position
                    yield items
                    continue
                if sub.ended:
                    return
                if idle_s is None:
                    await sub.wake.wait()
                else:
                    try:
                        await asyncio.wait_for(sub.wake.wait(), idle_s)
                    except TimeoutError:
                        yield []
        finally:
            if sub is not None:
                self._subscribers.discard(sub)

    async def _history(
        self, after: Position | None, run_id: str | None, types: frozenset[str] | None, tail: int | None
    ) -> AsyncGenerator[list[Item], None]:
        """The log's events after ``after`` (or as ``subscribe`` says when None), read in a thread."""
        if after is None and run_id is None:
            if tail:
                yield await anyio.to_thread.run_sync(self._read_tail, types, tail)
            return
        view = self.log.narrowed(run_id=run_id)
        try:
            reader = await anyio.to_thread.run_sync(view.reader)
        except LogMissing:
            return
        try:
            position = after if after is not None else view.START
            kept: deque[Item] | None = deque(maxlen=tail) if tail is not None and after is None else None
            while True:
                items, position, more = await anyio.to_thread.run_sync(
                    _read_chunk, reader, position, run_id, types
                )
                if kept is not None:
                    kept.extend(items)
                elif items:
                    yield items
                if not more:
                    break
            if kept:
                yield list(kept)
        finally:
            await anyio.to_thread.run_sync(reader.close)

    def _read_tail(self, types: frozenset[str] | None, tail: int) -> list[Item]:
        """The log's last ``tail`` events (of ``types``), oldest first (a thread's work)."""
        try:
            reader = self.log.reader()
        except LogMissing:
            return []
        with reader:
            found: list[Item] = []
            for line in reader.lines_backward(reader.end()):
                item = item_of(line.data, line.end)
                if item is not None and (types is None or item.event.get("type") in types):
                    found.append(item)
                    if len(found) >= tail:
                        break
        found.reverse()
        return found


def _needle(run_id: str | None) -> bytes | None:
    """The bytes ``run_id`` shows as in a line (None if JSON may escape it: then no pre-filter)."""
    if run_id is None or any(c < " " or c in '"\\' for c in run_id):
        return None
    return run_id.encode()


def _read_chunk(
    reader: Any, position: Position, run_id: str | None, types: frozenset[str] | None
) -> tuple[list[Item], Position, bool]:
    """One read of the history: its matching items, where the next read starts, and whether there
    may be more (a thread's work)."""
    batch = reader.read(position, HISTORY_BYTES)
    if not batch.lines:
        return [], position, False
    ends = reader.positions(batch)[1:]
    needle = _needle(run_id)
    items: list[Item] = []
    for line, end in zip(batch.lines, ends, strict=True):
        if needle is not None and needle not in line:
            continue  # (cheap: most lines of a big file log are other runs')
        item = item_of(line, end)
        if item is None:
            continue
        event = item.event
        if (run_id is None or event.get("run_id") == run_id) and (types is None or event.get("type") in types):
            items.append(item)
    return items, batch.end, True
