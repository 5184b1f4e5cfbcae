"""Complete lines of a file read from its end towards its start, so ``tail -n 5`` costs the same on
a 1 GB log as on a tiny one: only the blocks that hold the lines asked for are read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from warmup.events.reader import Line

BLOCK = 64 * 1024


def complete_end(fd: int, size: int) -> int:
    """The offset just past the last newline before ``size`` (0 if none): where complete lines end.

    Bytes after it are a line still being written (or a torn one); they are not read here.
    """
    end = size
    while end > 0:
        start = max(0, end - BLOCK)
        nl = os.pread(fd, end - start, start).rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        end = start
    return 0


def lines_backward(fd: int, end: int, block: int = BLOCK) -> Iterator[Line]:
    """Yield the complete lines of ``fd`` that end at or before ``end`` (a line end), last first."""
    buf = b""  # buf holds the file's bytes [buf_start, line_end)
    buf_start = end
    line_end = end  # just past the newline of the next line to yield
    want = block
    while line_end > 0:
        nl = buf.rfind(b"\n", 0, line_end - 1 - buf_start) if line_end - 1 > buf_start else -1
        if nl < 0 and buf_start > 0:
            start = max(0, buf_start - want)
            buf = os.pread(fd, buf_start - start, start) + buf[: line_end - buf_start]
            buf_start = start
            want = min(want * 2, 64 << 20)  # a long line: read geometrically more, not quadratically
            continue
        want = block
        line_start = buf_start + nl + 1
        yield Line(buf[line_start - buf_start : line_end - 1 - buf_start], line_start, line_end)
        line_end = line_start
