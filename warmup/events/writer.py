"""EventWriter: appends whole events to the log, safely shared by several processes.

Invariants, and why they hold:

- **One event, one write.** Each event is encoded to one complete line and handed to a single
  ``os.write`` on an ``O_APPEND`` descriptor. ``O_APPEND`` makes the kernel seek to the end and
  write atomically with respect to other appenders' offsets.
- **An exclusive ``flock`` around every append.** ``O_APPEND`` alone does not promise that a large
  write is never split or interleaved with another process's write (short writes happen on a full
  disk, on signals, on some file systems). Holding the lock for the whole write, including the
  rare retry of a short write, means another writer can never put its bytes between ours.
- **A torn tail is cut, and only a torn tail.** A writer that died mid-line (SIGKILL, power loss,
  ENOSPC) leaves a last line without a newline. Under the lock, before appending, the writer cuts
  the bytes after the last newline: otherwise the next event would be glued to the fragment and
  both would be lost. This is the one repair the log ever gets; complete lines are never changed.
  A write that fails part-way is cut back the same way at once, so a full disk never leaves a
  partial line behind.
- **Durability.** ``fsync="always"`` (the default) fsyncs after each event: an event the runner
  has reported is on disk. ``fsync="batch"`` leaves it to ``flush()``/``close()`` (and the OS).
- **Never into a file nobody can read again.** Before each append, under the lock, the writer
  checks that its file still has a name (``fstat`` link count) and that ``path`` still names it
  (device and inode). A log deleted, moved or replaced while a run appends would otherwise take
  every later event into an unlinked or renamed file, silently; instead the append fails with
  ``LogWriteError`` saying so, and the run stops as on a full disk. (One ``fstat`` and one
  ``stat`` per event: about a microsecond each, against the fsync that follows.)
- Only a regular file (or a character device such as ``/dev/full``) is opened as the log
  (``logfile.open_log``): a FIFO would block the writer once its pipe is full.
- The file is created with mode 0600: events can carry account ids, URLs and page errors; its
  folder, when warmup creates it, 0700.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from warmup.events.envelope import Event, encode, make_event
from warmup.events.logfile import open_log
from warmup.paths import make_private_dir

FsyncMode = Literal["always", "batch"]


class LogWriteError(OSError):
    """The log could not be appended to (disk full, permissions...); the message is for people."""


def _tail_cut_point(fd: int, size: int) -> int:
    """The length the file should have so that it ends with a newline (or is empty)."""
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    block = 64 * 1024
    end = size
    while end > 0:
        start = max(0, end - block)
        chunk = os.pread(fd, end - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        end = start
    return 0


def say_repair_on_stderr(path: Path, dropped: int) -> None:
    print(
        f"warmup: cut a torn last line ({dropped} bytes, never completed: its writer died mid-line) from {path}",
        file=sys.stderr,
    )


class EventWriter:
    """Append events to ``path``. Use as a context manager, or call ``close()``.

    ``on_repair(path, dropped_bytes)`` is told each time a torn tail is cut (by default, one line on
    stderr), so the repair is never silent.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fsync: FsyncMode = "always",
        on_repair: Callable[[Path, int], None] | None = say_repair_on_stderr,
    ) -> None:
        if fsync not in ("always", "batch"):
            raise ValueError(f"fsync must be 'always' or 'batch', not {fsync!r}")
        self.path = Path(path)
        self.fsync = fsync
        self.repaired_bytes = 0  # bytes of torn tail cut so far (0 almost always)
        self.on_repair = on_repair
        self._thread_lock = threading.Lock()
        try:
            make_private_dir(self.path.parent)
            self._fd = open_log(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600, devices_ok=True)
        except OSError as exc:
            raise LogWriteError(exc.errno, f"cannot open the event log {self.path}: {exc.strerror}") from None
        with self._locked():
            self._cut_torn_tail()

    # -- locking -----------------------------------------------------------------------------
    class _Locked:
        def __init__(self, writer: EventWriter) -> None:
            self.writer = writer

        def __enter__(self) -> None:
            self.writer._thread_lock.acquire()
            try:
                fcntl.flock(self.writer._fd, fcntl.LOCK_EX)
            except BaseException:
                self.writer._thread_lock.release()
                raise

        def __exit__(self, *exc: object) -> None:
            try:
                fcntl.flock(self.writer._fd, fcntl.LOCK_UN)
            finally:
                self.writer._thread_lock.release()

    def _locked(self) -> EventWriter._Locked:
        return EventWriter._Locked(self)

    def _cut_torn_tail(self) -> int:
        """Under the lock: drop bytes after the last newline. Returns how many were dropped."""
        size = os.fstat(self._fd).st_size
        keep = _tail_cut_point(self._fd, size)
        if keep < size:
            os.ftruncate(self._fd, keep)
            os.fsync(self._fd)
            self.repaired_bytes += size - keep
            if self.on_repair is not None:
                self.on_repair(self.path, size - keep)
        return size - keep

    def _refuse_a_lost_file(self) -> None:
        """Raise ``LogWriteError`` if our file was deleted, or ``path`` now names another file."""
        own = os.fstat(self._fd)
        if own.st_nlink == 0:
            raise LogWriteError(
                errno.ENOENT,
                f"cannot append to the event log {self.path}: it was deleted while warmup was writing to it "
                "(events written from now on would be lost)",
            )
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        except OSError:
            return  # (cannot look: a permission change on a folder; the file itself is still ours)
        if st is None or (st.st_dev, st.st_ino) != (own.st_dev, own.st_ino):
            raise LogWriteError(
                errno.ESTALE,
                f"cannot append to the event log {self.path}: the file was moved or replaced while warmup was "
                "writing to it (events written from now on would not be in the log at that path)",
            )

    # -- appending ---------------------------------------------------------------------------
    def append(self, event: Event) -> None:
        """Write one event as one whole line (fsynced unless fsync='batch')."""
        self.append_line(encode(event))

    def emit(self, type_: str, **fields: object) -> Event:
        """Build an event with a fresh envelope, append it, and return it."""
        event = make_event(type_, **fields)
        self.append(event)
        return event

    def append_line(self, line: bytes) -> None:
        if not line.endswith(b"\n") or b"\n" in line[:-1]:
            raise ValueError("an event line must be exactly one line ending in a newline")
        with self._locked():
            self._refuse_a_lost_file()
            # Another writer may have died mid-line since we opened: check again under the lock.
            self._cut_torn_tail()
            start = os.fstat(self._fd).st_size
            try:
                view = memoryview(line)
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
                if self.fsync == "always":
                    os.fsync(self._fd)
            except OSError as exc:
                # Never leave a partial line behind: cut back to where this event began.
                try:
                    os.ftruncate(self._fd, start)
                except OSError:
                    pass
                what = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
                raise LogWriteError(exc.errno, f"cannot append to the event log {self.path}: {what}") from None

    def flush(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
