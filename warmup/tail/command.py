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

from warmup.errors import UsageError, no_log
from warmup.log import Log, LogMissing, LogReader, Notice, open_log_backend
from warmup.tail.filters import Filters
from warmup.tail.format import Formatter

READ_BYTES = 4 << 20  # one read of the log when printing all of it
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

    def __init__(self, out: BinaryIO, filters: Filters, as_json: bool, colour: bool, log: Log) -> None:
        self.out = out
        self.filters = filters
        self.as_json = as_json
        self.formatter = Formatter(colour, log.describe_position)
        self.start = log.START

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
        """Write each matching (data, position) line."""
        write = self.out.write
        for data, position in lines:
            ok, obj, parsed = self.select(data)
            if ok:
                write(self.render(data, position, obj, parsed))

    def print_last(self, reader: LogReader, end: int, count: int) -> None:
        """The last ``count`` matching lines before ``end``, in log order, reading backwards."""
        picked: list[bytes] = []
        if count > 0:
            for line in reader.lines_backward(end):
                ok, obj, parsed = self.select(line.data)
                if ok:
                    picked.append(self.render(line.data, line.start, obj, parsed))
                    if len(picked) >= count:
                        break
        self.out.write(b"".join(reversed(picked)))

    def print_all(self, reader: LogReader) -> int:
        """Every matching complete line from the start; returns the position just past the last one."""
        position = self.start
        while True:
            batch = reader.read(position, READ_BYTES)
            if not batch.lines:
                return position
            if self.as_json and not self.filters.active:
                self.out.write(b"\n".join(batch.lines) + b"\n")
            else:
                self.print_lines(zip(batch.lines, reader.positions(batch), strict=False))  # (one more position)
            position = batch.end


def _open_reader(log: Log, follow: bool) -> LogReader | None:
    """The log opened for reading; None if it is missing and ``follow`` waits for it."""
    try:
        return log.reader()  # (the file backend refuses a FIFO, a device...: never blocks, never reads one)
    except LogMissing:
        if follow:
            return None
        raise UsageError(f"{no_log(log.name)}; or add -f to wait for it") from None


def _follow(printer: Printer, log: Log, reader: LogReader | None, position: int) -> None:
    out = printer.out
    follower = log.follower_from(reader, position) if reader is not None else log.follower(log.START)
    with follower:
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
    log_path: Path | str,
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
    log = open_log_backend(log_path, poll_s=poll_s)
    if run_id is not None:  # a stream then reads only that run's subjects
        log = log.narrowed(run_id=run_id)
    out = sys.stdout.buffer
    printer = Printer(out, filters, as_json, colour=not as_json and want_colour(sys.stdout), log=log)
    try:
        reader = _open_reader(log, follow)
        position = log.START
        try:
            if reader is not None:
                if count is None:
                    position = printer.print_all(reader)
                else:
                    position = reader.end()
                    printer.print_last(reader, position, count)
                out.flush()
        except BaseException:
            if reader is not None:
                reader.close()
            raise
        if not follow:
            if reader is not None:
                reader.close()
            return 0
        _follow(printer, log, reader, position)  # the follower takes the reader over
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
