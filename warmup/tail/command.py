"""``warmup tail``: print the log's last matching events, then (``-f``) the new ones as they come.

Output goes to stdout: readable lines (``format``), or with ``--json`` the matching lines byte for
byte as they are in the log. Notices (the log was truncated, replaced, is awaited) go to stderr.
Ctrl-C ends with exit 0 and a closed pipe (``| head``) ends quietly: both are how a user stops it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from warmup.errors import UsageError, WarmupError, no_log
from warmup.events.follower import Follower, Notice
from warmup.events.logfile import open_log
from warmup.events.reader import read_block
from warmup.tail.backward import complete_end, lines_backward
from warmup.tail.filters import Filters
from warmup.tail.format import Formatter

POLL_ENV = "WARMUP_FOLLOW_POLL"  # seconds: follow by polling at this interval instead of inotify


def parse_count(text: str) -> int | None:
    """``-n``: a count of events (None for ``all``)."""
    value = text.strip().lower()
    if value == "all":
        return None
    if value.isdigit():
        return int(value)
    raise UsageError(f"-n {text!r} is not a count: give a whole number such as 20, or 'all'")


def want_colour(stream: Any) -> bool:
    """Colour only on a terminal, never with NO_COLOR set (https://no-color.org) or TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _poll_setting() -> float | None:
    raw = os.environ.get(POLL_ENV)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.01 <= value <= 60:
        raise UsageError(f"{POLL_ENV}={raw!r} is not a polling interval: give seconds between 0.01 and 60")
    return value


class Printer:
    """Decides which lines match and writes them, readable or raw, to a binary stream."""

    def __init__(self, out: BinaryIO, filters: Filters, as_json: bool, colour: bool) -> None:
        self.out = out
        self.filters = filters
        self.as_json = as_json
        self.formatter = Formatter(colour)

    def select(self, data: bytes) -> tuple[bool, Any, bool]:
        """(matches, parsed object, whether it parsed)."""
        f = self.filters
        if not f.active:
            return True, None, False
        if not f.may_match(data):
            return False, None, False
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False, None, True
        return f.matches(obj), obj, True

    def render(self, data: bytes, offset: int, obj: Any = None, parsed: bool = False) -> bytes:
        if self.as_json:
            return data + b"\n"
        text = self.formatter.line(data, offset, obj, parsed)
        return text.encode("utf-8", "backslashreplace") + b"\n"

    def print_lines(self, lines: Iterable[tuple[bytes, int]]) -> None:
        """Write each matching (data, offset) line."""
        write = self.out.write
        for data, offset in lines:
            ok, obj, parsed = self.select(data)
            if ok:
                write(self.render(data, offset, obj, parsed))

    def print_last(self, fd: int, end: int, count: int) -> None:
        """The last ``count`` matching lines before ``end``, in log order, reading backwards."""
        picked: list[bytes] = []
        if count > 0:
            for line in lines_backward(fd, end):
                ok, obj, parsed = self.select(line.data)
                if ok:
                    picked.append(self.render(line.data, line.start, obj, parsed))
                    if len(picked) >= count:
                        break
        self.out.write(b"".join(reversed(picked)))

    def print_all(self, fd: int) -> int:
        """Every matching complete line from the start; returns the offset just past the last one."""
        offset = 0
        while True:
            lines, new_offset = read_block(fd, offset)
            if not lines:
                return offset
            if self.as_json and not self.filters.active:
                self.out.write(b"\n".join(lines) + b"\n")
            else:
                pos = offset
                starts = []
                for data in lines:
                    starts.append(pos)
                    pos += len(data) + 1
                self.print_lines(zip(lines, starts, strict=True))
            offset = new_offset


def _open_log(log_path: Path, follow: bool) -> int | None:
    try:
        fd = open_log(log_path)  # refuses a FIFO, a device...: never blocks, never reads one
    except FileNotFoundError:
        if follow:
            return None
        raise UsageError(f"{no_log(log_path)}; or add -f to wait for it") from None
    except PermissionError:
        raise UsageError(f"cannot read the event log {log_path}: permission denied") from None
    except OSError as exc:
        raise WarmupError(f"cannot open the event log {log_path}: {exc.strerror}") from None
    return fd


def _follow(printer: Printer, log_path: Path, fd: int | None, offset: int, poll_s: float | None) -> None:
    out = printer.out
    with Follower(
        log_path, offset, fd=fd, use_inotify=False if poll_s else None, poll_s=poll_s or 0.1
    ) as follower:
        for item in follower:
            if item is None:
                out.flush()
            elif isinstance(item, Notice):
                out.flush()
                sys.stderr.write(f"warmup: {item.message}\n")
                sys.stderr.flush()
            else:
                ok, obj, parsed = printer.select(item.data)
                if ok:
                    out.write(printer.render(item.data, item.start, obj, parsed))


def _silence_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so the final flush at exit cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def run_tail(
    log_path: Path,
    *,
    lines: str,
    follow: bool,
    run_id: str | None,
    account_id: str | None,
    types: tuple[str, ...],
    since: str | None,
    as_json: bool,
) -> int:
    """Print the last matching events of ``log_path`` (and with ``follow`` the new ones). Exit code."""
    count = parse_count(lines)
    filters = Filters.from_options(run_id, account_id, types, since)
    poll_s = _poll_setting() if follow else None
    log_path = Path(log_path)
    out = sys.stdout.buffer
    printer = Printer(out, filters, as_json, colour=not as_json and want_colour(sys.stdout))
    try:
        fd = _open_log(log_path, follow)
        offset = 0
        try:
            if fd is not None:
                if count is None:
                    offset = printer.print_all(fd)
                else:
                    offset = complete_end(fd, os.fstat(fd).st_size)
                    printer.print_last(fd, offset, count)
                out.flush()
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        if not follow:
            if fd is not None:
                os.close(fd)
            return 0
        _follow(printer, log_path, fd, offset, poll_s)  # the follower owns fd from here
        return 0
    except KeyboardInterrupt:
        try:
            out.flush()
        except OSError:
            _silence_stdout()
        return 0
    except BrokenPipeError:
        _silence_stdout()
        return 0
