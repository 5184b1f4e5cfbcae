"""Follower: the complete lines of a growing file, as they are appended, without a busy loop.

``Follower(path, offset)`` is an iterator. It yields

- a ``Line(data, start, end)`` (see ``warmup.events.reader``) for each complete line, once;
- ``None`` each time it has caught up with the file, just before it waits (a consumer flushes or
  commits there);
- a ``Notice(kind, message)`` when the file at ``path`` changed identity: it was ``"missing"`` at the
  start and is waited for, was ``"created"``, ``"truncated"`` (smaller than what was read),
  ``"replaced"`` (another inode at the path, e.g. a rename over it) or ``"removed"``. After
  ``created``, ``truncated`` and ``replaced`` the follower reads the file at ``path`` from its start,
  so line offsets start again at 0. These are ``tail -F`` semantics: the name is followed.

Invariants, and why they hold:

- **A partial last line is held until its newline arrives, and each line is yielded once.** The
  read position is always the start of the first byte not yet yielded, which is a line start; the
  bytes after the last newline are read again on the next wake-up rather than buffered. That also
  makes the writer's one repair harmless: a torn tail cut (and even a new line appended in its
  place) is simply read again from that line start, and never glued to the fragment.
- **Truncation** is a file shorter than the read position, or one whose bytes just before the read
  position are no longer the ones already read (the last ``FINGERPRINT`` bytes are kept and
  compared on each wake-up): so a log truncated and written again past the old position before the
  follower looked is caught as well, which a size check alone (GNU tail) misses.
- **Replacement**: the inode at ``path`` differs from the open one. The old file is read to its end
  (lines its writer finished before the switch are not lost), then the new one from its start.
- **No busy loop.** Waiting is a ``poll()`` on an inotify descriptor (through libc by ctypes) that
  watches the file (writes, truncation, deletion) and its directory (creation and renames of that
  name only, so a database next to the log does not wake us). A timeout re-checks the path anyway,
  once a second, in case an event was missed (the directory itself replaced, a queue overflow).
  Without inotify (not Linux, or no watches left) it polls every ``poll_s`` seconds.
- **Stopping** from a signal handler or another thread: ``stop()`` sets a flag and writes a byte to
  a pipe the wait also polls, so a blocked wait returns at once. The iterator then yields what the
  file holds, a final ``None``, and ends without waiting again (a projector can apply everything
  already in the log before it exits).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from warmup.events.logfile import open_log
from warmup.events.reader import Line

CHUNK = 1 << 20

# <sys/inotify.h>
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

FILE_MASK = IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF
DIR_MASK = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
_EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name

FINGERPRINT = 512  # bytes before the read position kept to notice a truncate-and-rewrite
SAFETY_RECHECK_S = 1.0  # with inotify: re-check the path this often even without an event


class Notice(NamedTuple):
    """The followed file changed identity; ``message`` is one line for people."""

    kind: str  # missing | created | truncated | replaced | removed
    message: str


class _Inotify:
    """A minimal inotify handle through libc: add/remove watches, read pending events."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name, use_errno=True)
        for fn in ("inotify_init1", "inotify_add_watch", "inotify_rm_watch"):
            if not hasattr(libc, fn):
                raise OSError(errno.ENOSYS, f"libc has no {fn}")
        self._libc = libc
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd: int = fd

    def add_watch(self, path: str | bytes, mask: int) -> int | None:
        """The watch descriptor, or None if the path cannot be watched (gone, no watches left)."""
        raw = path if isinstance(path, bytes) else os.fsencode(path)
        wd = self._libc.inotify_add_watch(self.fd, raw, mask)
        return wd if wd >= 0 else None

    def rm_watch(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)  # EINVAL if the kernel dropped it already: fine

    def read_events(self) -> list[tuple[int, int, bytes]]:
        """All pending (wd, mask, name) events; an empty list if none."""
        out: list[tuple[int, int, bytes]] = []
        while True:
            try:
                buf = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return out
            except InterruptedError:
                continue
            if not buf:
                return out
            pos = 0
            while pos + _EVENT_HEADER.size <= len(buf):
                wd, mask, _cookie, length = _EVENT_HEADER.unpack_from(buf, pos)
                pos += _EVENT_HEADER.size
                name = buf[pos : pos + length].split(b"\0", 1)[0]
                pos += length
                out.append((wd, mask, name))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_inotify(use_inotify: bool | None) -> _Inotify | None:
    """An inotify instance; None where there is none (not Linux, no instances left) unless
    ``use_inotify`` is True (then it raises), or when it is False (polling asked for)."""
    if use_inotify is False:
        return None
    try:
        return _Inotify()
    except (OSError, AttributeError):
        if use_inotify:
            raise
        return None


class WakePipe:
    """A self-pipe: ``wake()`` (safe in a signal handler or another thread) makes a ``poll`` on
    ``fd`` return at once; ``drain()`` takes the wake-up; ``close()`` is idempotent."""

    def __init__(self) -> None:
        self.fd, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def wake(self) -> None:
        try:
            os.write(self._w, b"x")
        except OSError:
            pass  # the pipe is full (already woken) or closed

    def drain(self) -> None:
        try:
            os.read(self.fd, 512)
        except OSError:
            pass

    def close(self) -> None:
        for fd in (self.fd, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        self.fd = self._w = -1


class Follower:
    """Follow ``path`` from byte ``offset`` (a line start). Iterate it; ``stop()`` ends it; ``close()``.

    ``fd``: an already open descriptor of ``path`` to follow (the follower takes ownership), so a
    caller that read the file's end itself continues on exactly that file. ``use_inotify``: None
    means "if available"; False forces polling every ``poll_s`` seconds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        offset: int = 0,
        *,
        fd: int | None = None,
        use_inotify: bool | None = None,
        poll_s: float = 0.1,
    ) -> None:
        self.path = Path(path)
        self.poll_s = poll_s
        self._pos = offset
        self._fd: int | None = fd
        self._seen = b""  # up to FINGERPRINT bytes of the file just before self._seen_end, as read
        self._seen_end = 0
        self._stopped = False
        self._wake = WakePipe()
        self._inotify = open_inotify(use_inotify)
        self._file_wd: int | None = None
        self._dir_wd: int | None = None
        self._check_path = True
        self._removed_noticed = False
        if self._fd is None:
            self._fd = self._open()
        if self._fd is not None:
            self._seen = os.pread(self._fd, min(offset, FINGERPRINT), offset - min(offset, FINGERPRINT))
            self._seen_end = offset
            self._watch_file()

    @property
    def uses_inotify(self) -> bool:
        return self._inotify is not None

    @property
    def position(self) -> int:
        """The offset of the first byte not yet yielded (a line start) in the current file."""
        return self._pos

    # -- control -------------------------------------------------------------------------------
    def stop(self) -> None:
        """End the iteration after what the file holds now. Safe in a signal handler or another thread."""
        self._stopped = True
        self._wake.wake()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        self._wake.close()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- iteration -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Line | Notice | None]:
        if self._fd is None:
            yield Notice("missing", f"{self.path} does not exist yet; waiting for it")
        while True:
            if self._check_path:
                self._check_path = False
                yield from self._recheck_path()
            if self._fd is not None:
                yield from self._drain()
            yield None
            if self._stopped:
                return
            self._wait()

    def _drain(self) -> Iterator[Line | Notice]:
        """Yield the complete lines from the read position to the end of the current file."""
        assert self._fd is not None
        fd = self._fd
        size = os.fstat(fd).st_size
        seen = self._seen
        if size < self._pos or (seen and os.pread(fd, len(seen), self._seen_end - len(seen)) != seen):
            yield Notice("truncated", f"{self.path} was truncated; reading it again from its start")
            self._pos = 0
            self._seen = b""
        while True:
            chunk = os.pread(fd, CHUNK, self._pos)
            if not chunk:
                return
            last_nl = chunk.rfind(b"\n")
            if last_nl < 0:
                if len(chunk) < CHUNK:
                    return  # a partial line: wait for its newline, read it again then
                chunk = self._read_long_line(fd, chunk)
                if chunk is None:
                    return
                last_nl = len(chunk) - 1
            pos = self._pos
            if pos != self._seen_end:
                self._seen = b""
            self._seen = (self._seen + chunk[max(0, last_nl + 1 - FINGERPRINT) : last_nl + 1])[-FINGERPRINT:]
            self._seen_end = pos + last_nl + 1
            for data in chunk[:last_nl].split(b"\n"):
                end = pos + len(data) + 1
                self._pos = end
                yield Line(data, pos, end)
                pos = end
            if len(chunk) < CHUNK:
                return

    def _read_long_line(self, fd: int, head: bytes) -> bytes | None:
        """A line longer than CHUNK: read on to its newline (inclusive), or None if it is partial."""
        parts = [head]
        at = self._pos + len(head)
        while True:
            more = os.pread(fd, CHUNK, at)
            if not more:
                return None
            nl = more.find(b"\n")
            if nl >= 0:
                parts.append(more[: nl + 1])
                return b"".join(parts)
            parts.append(more)
            at += len(more)

    def _recheck_path(self) -> Iterator[Line | Notice]:
        """Compare the inode at the path with the open one; switch files as ``tail -F`` does."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        except OSError:
            return
        if self._fd is None:
            if st is not None:
                self._fd = self._open()
                if self._fd is not None:
                    self._pos = 0
                    self._seen = b""
                    self._watch_file()
                    yield Notice("created", f"{self.path} appeared; following it")
            return
        own = os.fstat(self._fd)
        if st is not None and (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
            self._removed_noticed = False
            return
        # The name no longer points at our file: finish the old one, then take the new one.
        yield from self._drain()
        if st is None:
            if not self._removed_noticed:
                self._removed_noticed = True
                yield Notice("removed", f"{self.path} was removed; waiting for it to come back")
            return
        new_fd = self._open()
        if new_fd is None:
            return
        os.close(self._fd)
        self._fd = new_fd
        self._pos = 0
        self._seen = b""
        self._watch_file()
        if self._removed_noticed:
            self._removed_noticed = False
            yield Notice("created", f"{self.path} is back; reading it from its start")
        else:
            yield Notice("replaced", f"{self.path} was replaced; reading the new file from its start")

    def _open(self) -> int | None:
        """The file at ``path``, or None while there is none; ``NotALogFile`` if a FIFO or such is there."""
        try:
            return open_log(self.path)  # never blocks on a FIFO put at the path
        except FileNotFoundError:
            return None

    # -- waiting -------------------------------------------------------------------------------
    def _watch_file(self) -> None:
        ino = self._inotify
        if ino is None or self._fd is None:
            return
        if self._file_wd is not None:
            ino.rm_watch(self._file_wd)
        # /proc/self/fd/N names exactly the open inode, even if the path was replaced meanwhile.
        wd = ino.add_watch(f"/proc/self/fd/{self._fd}", FILE_MASK)
        self._file_wd = wd if wd is not None else ino.add_watch(str(self.path), FILE_MASK)
        self._watch_dir()

    def _watch_dir(self) -> None:
        if self._inotify is not None and self._dir_wd is None:
            self._dir_wd = self._inotify.add_watch(str(self.path.parent), DIR_MASK)

    def _wait(self) -> None:
        """Block until the file may have changed, ``stop()`` is called, or the re-check timeout."""
        ino = self._inotify
        if ino is not None:
            self._watch_dir()  # the directory may have been created since
        watching = ino is not None and self._dir_wd is not None and (self._fd is None or self._file_wd is not None)
        timeout_s = SAFETY_RECHECK_S if watching else self.poll_s
        poller = select.poll()
        poller.register(self._wake.fd, select.POLLIN)
        if ino is not None:
            poller.register(ino.fd, select.POLLIN)
        ready = {fd for fd, _ in poller.poll(timeout_s * 1000)}
        if self._wake.fd in ready:
            self._wake.drain()
        if not ready or not watching:
            self._check_path = True
        if ino is None or ino.fd not in ready:
            return
        name = self.path.name.encode()
        for wd, mask, ev_name in ino.read_events():
            if mask & IN_Q_OVERFLOW:
                self._check_path = True
            elif wd == self._dir_wd:
                if mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED):
                    self._dir_wd = None
                    self._check_path = True
                elif ev_name == name:
                    self._check_path = True
            elif wd == self._file_wd and mask & (IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED):
                if mask & IN_IGNORED:
                    self._file_wd = None
                self._check_path = True
