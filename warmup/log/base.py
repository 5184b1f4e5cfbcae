"""The log interface: every read or write of the event log goes through these few classes.

A backend (``file`` today, ``nats`` next) implements ``Log``; consumers (the projector, ``tail``,
``report``, ``recover``, run ids, history) use only what is declared here, so a backend can be
swapped without touching them. ``tests/test_log_contract.py`` is the contract every backend runs.

**Positions are opaque.** A position is an ``int`` that a backend hands out and takes back: where
the next read starts (``Batch.end``), where a line starts (``Line.start``). Consumers store them,
compare them (they grow along the log), and pass them back; they never compute one (no "+ len(line)
+ 1" outside the file backend, where positions happen to be byte offsets; in a stream they are
sequence numbers). ``Log.START`` is the position before the first line.

**Complete lines only.** A read returns whole lines (without their newline), never a line its
writer may still be writing; a torn last line is not returned until it is complete (or cut by the
next writer, the log's one repair).

**Identity.** ``fingerprint(position)`` is a short text that changes if the log up to ``position`` is
not the same any more (truncated, replaced, edited); ``verify`` raises ``LogMismatch`` then, with
the advice to replay. Checkpoints store both the position and the fingerprint.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from warmup.errors import UsageError, WarmupError
from warmup.events.envelope import Event, encode, make_event
from warmup.events.follower import Notice
from warmup.events.reader import Line

Position = int  # opaque: see the module's docstring


class LogMismatch(WarmupError):
    """The log no longer holds what a checkpoint covers (truncated, replaced): exit 1, advise replay."""


class LogMissing(UsageError):
    """``Log.reader()`` found no log (the one "no event log at ..." wording, exit 2): a consumer that
    may do without one (``tail -f`` waits for it, ``recover`` has nothing to do) catches this."""


class _Closing:
    """``with`` closes it: ``__exit__`` calls ``close()``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True)
class Batch:
    """Complete lines read from ``start``; ``end`` is where the next read starts (``start`` if none)."""

    lines: list[bytes]
    start: Position
    end: Position


class LogReader(_Closing, ABC):
    """One open handle on the log, for reading; close it (or use ``with``).

    A file backend reads the file it opened, even if another file is renamed over the path since:
    ``verify`` then tells that the log at the path is another one.
    """

    @abstractmethod
    def read(self, position: Position, max_bytes: int) -> Batch:
        """Complete lines from ``position`` (a line start), about ``max_bytes`` of them (at least one
        if there is one, however long)."""

    @abstractmethod
    def positions(self, batch: Batch) -> list[Position]:
        """The start of each line of ``batch``, then ``batch.end``: ``len(batch.lines) + 1`` positions."""

    @abstractmethod
    def end(self) -> Position:
        """The position just past the last complete line now."""

    @abstractmethod
    def lines_backward(self, end: Position) -> Iterator[Line]:
        """The complete lines that end at or before ``end``, last first (``tail -n`` on a huge log)."""

    @abstractmethod
    def fingerprint(self, position: Position) -> str | None:
        """A text that identifies the log up to ``position`` (None at ``START``)."""

    @abstractmethod
    def verify(self, position: Position, fingerprint: str | None) -> None:
        """Raise ``LogMismatch`` (saying what and advising ``warmup replay``) unless the log still
        holds, unchanged, everything before ``position``."""

    @abstractmethod
    def close(self) -> None: ...



class LogWatch(_Closing, ABC):
    """Wakes a follower when the log may have grown: ``wait`` returns at once on a change (inotify for
    a file), else after ``timeout_s``. ``stop()`` (from a signal handler or another thread) makes a
    blocked ``wait`` return at once. Spurious wake-ups are allowed; missed ones are not."""

    @abstractmethod
    def wait(self, timeout_s: float) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...



class LogFollower(_Closing, ABC):
    """An iterator over the log as it grows: a ``Line`` for each complete line, once; ``None`` each
    time it has caught up (just before it waits); a ``Notice`` when the log changed identity (a file
    removed, truncated, replaced: ``tail -F`` semantics, reading the new one from its start).
    ``stop()`` (safe in a signal handler) ends it after what the log holds now."""

    @abstractmethod
    def __iter__(self) -> Iterator[Line | Notice | None]: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...



class LogAppender(ABC):
    """Appends whole lines; each one is durable when ``append_line`` returns. Close it when done.

    ``emit`` and ``append`` are the typed way in (the runner, ``recover``, the workers): an event
    built and validated by ``warmup.events.envelope``, encoded as one line.
    """

    @abstractmethod
    def append_line(self, line: bytes) -> None:
        """Append one line (``line`` holds no newline but may end with one, which is then its own)."""

    def append(self, event: Event) -> None:
        """Append one event as one line."""
        self.append_line(encode(event))

    def emit(self, type_: str, **fields: object) -> Event:
        """Build an event with a fresh envelope (id, ts), append it, and return it."""
        event = make_event(type_, **fields)
        self.append(event)
        return event

    @abstractmethod
    def close(self) -> None: ...


class Log(ABC):
    """An event log. ``name`` is how messages name it (a path; a URL without credentials)."""

    START: Position = 0
    name: str

    @abstractmethod
    def exists(self) -> bool:
        """True if the log is there to be read (a file: it exists and is a regular file)."""

    @abstractmethod
    def reader(self) -> LogReader:
        """Open the log for reading; ``UsageError`` (one line, exit 2) when there is none (``LogMissing``)
        or it is not a log."""

    @abstractmethod
    def watch(self) -> LogWatch:
        """Start watching for appends (works before the log exists: its creation wakes the watch)."""

    @abstractmethod
    def follower(self, position: Position) -> LogFollower:
        """Follow the log from ``position``: ``tail -f`` (see ``LogFollower``)."""

    def follower_from(self, reader: LogReader, position: Position) -> LogFollower:
        """Follow from ``position`` on what ``reader`` has open, taking the reader over (it is closed
        here or by the follower): ``tail -f`` reads the last lines, then follows on exactly that log.
        By default the reader is closed and ``follower(position)`` is returned."""
        reader.close()
        return self.follower(position)

    @abstractmethod
    def appender(self, *, fsync: str = "always") -> LogAppender:
        """Open the log for appending (created if missing). ``fsync``: ``"always"`` (each line durable
        when ``append_line`` returns) or ``"batch"`` (a file is synced at close; a stream acks each
        message anyway)."""

    def narrowed(self, *, run_id: str | None = None, types: Collection[str] | None = None) -> Log:
        """A view that reads only ``run_id``'s events and/or events of ``types``, where the backend can
        select them without reading the rest (a stream's subjects). Its positions are the whole log's.

        It may hold more than asked (the file backend returns the log itself): consumers still check
        each event's ``run_id`` and ``type``. Used by ``recover``, ``report`` and ``tail --run``.
        """
        return self

    def describe_position(self, position: Position) -> str:
        """``position`` for people ("byte 1234", "sequence 56")."""
        return f"position {position}"
