"""EventReader: complete lines of the log from a byte offset, each with the offset just past it.

A last line without its newline is never yielded: its writer may still be writing it (or died, in
which case the next writer cuts it). Offsets are byte offsets into the file, so a consumer that
stores "the offset after the last line I applied" can resume exactly there.

Following a growing log (inotify, truncation, replacement) is ``warmup.events.follower.Follower``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NamedTuple

CHUNK = 1 << 20


class Line(NamedTuple):
    """One complete line: its bytes without the newline, where it starts, and where the next starts."""

    data: bytes
    start: int
    end: int


def read_lines(path: str | os.PathLike[str], offset: int = 0, limit: int | None = None) -> Iterator[Line]:
    """Yield complete lines of ``path`` from byte ``offset`` (which must be a line start).

    Stops at the end of the file as it is now, at a torn last line, or after ``limit`` lines.
    """
    with open(path, "rb") as f:
        yield from _read_open(f.fileno(), offset, limit)


def _read_open(fd: int, offset: int, limit: int | None = None) -> Iterator[Line]:
    count = 0
    pos = offset
    pending = b""
    while True:
        chunk = os.pread(fd, CHUNK, pos + len(pending))
        if not chunk:
            return
        buf = pending + chunk if pending else chunk
        lines = buf.split(b"\n")
        pending = lines.pop()  # the part after the last newline: incomplete, read on
        for data in lines:
            end = pos + len(data) + 1
            yield Line(data, pos, end)
            pos = end
            count += 1
            if limit is not None and count >= limit:
                return


def read_block(fd: int, offset: int, max_bytes: int = 4 * CHUNK) -> tuple[list[bytes], int]:
    """Complete lines in about ``max_bytes`` from ``offset``, and the offset just past the last one.

    The fast path for bulk consumers (the projector): one read and one split per block instead of
    an object per line. A line longer than ``max_bytes`` is read whole all the same.
    """
    size = max_bytes
    while True:
        buf = os.pread(fd, size, offset)
        nl = buf.rfind(b"\n")
        if nl >= 0:
            lines = buf.split(b"\n")
            lines.pop()  # the bytes after the last newline (b"" when the block ends with one)
            return lines, offset + nl + 1
        if len(buf) < size:  # end of file inside a torn or growing line
            return [], offset
        size *= 2
