"""The file backend: the event log is one append-only JSONL file; positions are byte offsets.

Only this module (and its internals, ``warmup.events.reader``/``follower``/``writer``/``logfile`` and
``warmup.tail.backward``) knows that a position is a byte offset into the file.

- Reading: a ``FileLogReader`` holds one descriptor opened with ``open_log`` (never blocks on a FIFO,
  refuses what is not a regular file), so it keeps reading the file it opened even if another is
  renamed over the path; ``verify`` tells when the bytes no longer match a checkpoint.
- Fingerprint: ``"<sha256 of the first 4 KiB>:<sha256 of the 4 KiB before position>"`` (lines hold
  unique event ids, so another file, or a log edited near the position, hashes differently), and
  the file must still be at least ``position`` bytes long.
- Watching: inotify on the file (writes, truncation, deletion) and on its folder (creation and
  renames of that name), plus a self-pipe for ``stop()``; a polling fallback without inotify.
- Following and appending are ``warmup.events.follower.Follower`` and ``warmup.events.writer.EventWriter``.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import select
from collections.abc import Iterator
from pathlib import Path

from warmup.errors import UsageError, WarmupError, no_log
from warmup.events.follower import DIR_MASK, FILE_MASK, IN_IGNORED, Follower, Notice, WakePipe, open_inotify
from warmup.events.logfile import open_log
from warmup.events.reader import Line, read_block
from warmup.events.writer import EventWriter
from warmup.log.base import (
    Batch,
    Log,
    LogAppender,
    LogFollower,
    LogMismatch,
    LogMissing,
    LogReader,
    LogWatch,
    Position,
)
from warmup.tail.backward import complete_end, lines_backward

FINGERPRINT_BYTES = 4096
REPLAY_HINT = "Run `warmup replay` to rebuild the tables from this log."


def _open_for_reading(path: Path) -> int:
    """``open_log(path)``, with the log's missing / unreadable cases worded for people."""
    try:
        return open_log(path)  # refuses a FIFO, a device...: never blocks, never reads one
    except (FileNotFoundError, NotADirectoryError):
        raise LogMissing(no_log(path)) from None
    except PermissionError:
        raise UsageError(f"cannot read the event log {path}: permission denied") from None
    except OSError as exc:
        raise WarmupError(f"cannot open the event log {path}: {exc.strerror}") from None


def _hashes(fd: int, offset: int) -> str | None:
    if offset == 0:
        return None
    head = os.pread(fd, min(offset, FINGERPRINT_BYTES), 0)
    start = max(0, offset - FINGERPRINT_BYTES)
    tail = os.pread(fd, offset - start, start)
    return f"{hashlib.sha256(head).hexdigest()}:{hashlib.sha256(tail).hexdigest()}"


class FileLogReader(LogReader):
    """Reads the file behind ``fd`` (owned: closed by ``close``). Positions are byte offsets."""

    def __init__(self, name: str, fd: int) -> None:
        self.name = name
        self._fd = fd

    def read(self, position: Position, max_bytes: int = 4 << 20) -> Batch:
        lines, end = read_block(self._fd, position, max_bytes)
        return Batch(lines, position, end)

    def positions(self, batch: Batch) -> list[Position]:
        return list(itertools.accumulate((len(line) + 1 for line in batch.lines), initial=batch.start))

    def end(self) -> Position:
        return complete_end(self._fd, os.fstat(self._fd).st_size)

    def lines_backward(self, end: Position) -> Iterator[Line]:
        return lines_backward(self._fd, end)

    def fingerprint(self, position: Position) -> str | None:
        return _hashes(self._fd, position)

    def verify(self, position: Position, fingerprint: str | None) -> None:
        if position == 0:
            return
        size = os.fstat(self._fd).st_size
        if size < position:
            raise LogMismatch(
                f"the log {self.name} is shorter ({size} bytes) than the database's checkpoint "
                f"({position} bytes): it was truncated or replaced. {REPLAY_HINT}"
            )
        if _hashes(self._fd, position) != fingerprint:
            raise LogMismatch(
                f"the log {self.name} is not the one the database was built from "
                f"(its bytes before offset {position} differ). {REPLAY_HINT}"
            )

    def take_fd(self) -> int:
        """Hand the descriptor over (to a follower); the reader is closed afterwards."""
        fd, self._fd = self._fd, -1
        return fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FileLogWatch(LogWatch):
    """Wakes on any change of the file at ``path``, its creation or a rename over it.

    Invariant: no missed wake-up. The file's watch is (re)placed on whatever file the path names
    at each ``wait`` (a ``wait`` that finds another file there returns at once: it may have grown
    before it was watched), and the folder's watch sees the name created, moved or deleted; without
    inotify (or before the folder exists) ``wait`` polls at most ``poll_s`` apart.
    """

    def __init__(self, path: Path, *, use_inotify: bool | None = None, poll_s: float = 0.1) -> None:
        self.path = path
        self.poll_s = poll_s
        self._wake = WakePipe()
        self._inotify = open_inotify(use_inotify)
        self._file_wd: int | None = None
        self._file_id: tuple[int, int] | None = None
        self._dir_wd: int | None = None
        self._rewatch()

    @property
    def uses_inotify(self) -> bool:
        return self._inotify is not None

    def _rewatch(self) -> tuple[bool, bool]:
        """Watch the folder and the file the path names now: (both are watched, the file is another)."""
        ino = self._inotify
        if ino is None:
            return False, False
        if self._dir_wd is None:
            self._dir_wd = ino.add_watch(str(self.path.parent), DIR_MASK)
        try:
            st = os.stat(self.path)
            ident: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            ident = None
        changed = ident != self._file_id
        if changed:
            if self._file_wd is not None:
                ino.rm_watch(self._file_wd)
                self._file_wd = None
            self._file_id = ident
            if ident is not None:
                self._file_wd = ino.add_watch(str(self.path), FILE_MASK)
                if self._file_wd is None:
                    self._file_id = None
        return self._dir_wd is not None and (ident is None or self._file_wd is not None), changed

    def wait(self, timeout_s: float) -> None:
        ino = self._inotify
        watching, changed = self._rewatch()
        if changed:
            # Another file at the path since the last wait: it may have grown before its watch was
            # placed just now, unseen. Return at once (a spurious wake-up, never a missed one).
            return
        poller = select.poll()
        poller.register(self._wake.fd, select.POLLIN)
        if ino is not None:
            poller.register(ino.fd, select.POLLIN)
        timeout = timeout_s if watching else min(timeout_s, self.poll_s)
        ready = {fd for fd, _ in poller.poll(max(0.0, timeout) * 1000)}
        if self._wake.fd in ready:
            self._wake.drain()
        if ino is not None and ino.fd in ready:
            for wd, mask, _name in ino.read_events():
                if mask & IN_IGNORED:
                    if wd == self._dir_wd:
                        self._dir_wd = None
                    elif wd == self._file_wd:
                        self._file_wd = None
                        self._file_id = None

    def stop(self) -> None:
        self._wake.wake()

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        self._wake.close()


class FileLogFollower(LogFollower):
    """``warmup.events.follower.Follower`` behind the ``LogFollower`` interface."""

    def __init__(self, follower: Follower) -> None:
        self._follower = follower

    @property
    def uses_inotify(self) -> bool:
        return self._follower.uses_inotify

    def __iter__(self) -> Iterator[Line | Notice | None]:
        return iter(self._follower)

    def stop(self) -> None:
        self._follower.stop()

    def close(self) -> None:
        self._follower.close()


class FileLogAppender(LogAppender):
    """``warmup.events.writer.EventWriter`` behind the ``LogAppender`` interface (fsync per line)."""

    def __init__(self, writer: EventWriter) -> None:
        self.writer = writer

    def append_line(self, line: bytes) -> None:
        self.writer.append_line(line if line.endswith(b"\n") else line + b"\n")

    def close(self) -> None:
        self.writer.close()


class FileLog(Log):
    """The log in the file at ``path``. ``poll_s``: follow and watch by polling at that interval
    instead of inotify (``WARMUP_FOLLOW_POLL``)."""

    START: Position = 0

    def __init__(self, path: str | os.PathLike[str], *, poll_s: float | None = None) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.poll_s = poll_s

    def __repr__(self) -> str:
        return f"FileLog({self.name!r})"

    def exists(self) -> bool:
        return self.path.is_file()

    def reader(self) -> FileLogReader:
        return FileLogReader(self.name, _open_for_reading(self.path))

    def watch(self) -> FileLogWatch:
        if self.poll_s:
            return FileLogWatch(self.path, use_inotify=False, poll_s=self.poll_s)
        return FileLogWatch(self.path)

    def follower(self, position: Position) -> FileLogFollower:
        return FileLogFollower(self._follower(position, None))

    def follower_from(self, reader: LogReader, position: Position) -> FileLogFollower:
        """Follow from ``position`` on the very file ``reader`` has open (it takes the reader over)."""
        fd = reader.take_fd() if isinstance(reader, FileLogReader) else None
        if fd is None:
            reader.close()
        return FileLogFollower(self._follower(position, fd))

    def _follower(self, position: Position, fd: int | None) -> Follower:
        if self.poll_s:
            return Follower(self.path, position, fd=fd, use_inotify=False, poll_s=self.poll_s)
        return Follower(self.path, position, fd=fd)

    def appender(self, *, fsync: str = "always") -> FileLogAppender:
        return FileLogAppender(EventWriter(self.path, fsync="batch" if fsync == "batch" else "always"))

    def describe_position(self, position: Position) -> str:
        return f"byte {position}"
