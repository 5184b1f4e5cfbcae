"""``warmup log copy SRC DST``: copy an event log into another, between any two backends.

Invariants:

- **Exact.** Every line is appended to DST as the very bytes it has in SRC (``LogAppender.append_line``),
  in SRC's order: an event keeps its id and everything else, so projecting the copy gives the same
  tables as projecting SRC.
- **Idempotent, by content, not by a backend's de-duplication window.** DST is read first: the ids
  of its events (a set) and the hashes of its lines that are not events (a count per hash). An event
  of SRC whose id is already in DST (or earlier in SRC) is skipped; a line that is not an event is
  skipped only if DST already holds as many copies of those very bytes as SRC has so far. So a
  second copy adds nothing, and a copy cut short (Ctrl-C, a crash) is completed by running it
  again. A DST that does not exist yet holds nothing.
- **An event is a line that is a JSON object with a non-empty string ``id``** (what the id test
  needs, not the full schema check: the projector still decides what applies). Any other line (bad
  JSON, no id) is "a line that is not an event", copied as it is and counted apart.
- **What SRC holds when the copy starts.** The copy stops at SRC's end as it was when the copy began
  (a run appending meanwhile is not chased; a re-run takes the rest).
- **Only the log interface** (``warmup.log.base``): positions are opaque, backends interchangeable.
- Refused, exit 2, one line: SRC missing ("no event log at ..."), SRC and DST the same log, a DST
  that exists but is not an event log (it has lines and none is an event: a database, a task file).
- Cost: one durable append per line, the only kind the interface has. A file DST's appender fsyncs
  every line: 100,000 events file -> file took 31.5 s here (2.5 s of it without the fsyncs); a
  stream DST waits for each ack: about 1,770 events/s (1,000,000 events in 565 s). A batch append
  in the interface (one fsync, or many publishes in flight, per batch) would take most of that away.
  DST's ids are held in memory, about 100 bytes each: a DST of 1,000,000 events is read in 2 s and
  the command peaks at 147 MB.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated

import msgspec

from warmup.errors import UsageError
from warmup.log import Log, LogMissing, is_stream_url, open_log_backend

READ_BYTES = 4 << 20  # each read of SRC or DST: about 4 MiB of lines


class _Id(msgspec.Struct):
    """Just the envelope's ``id``: msgspec skips every other field without building it."""

    id: Annotated[str, msgspec.Meta(min_length=1)]


_decode_id = msgspec.json.Decoder(_Id).decode
_NOT_AN_EVENT = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError)


def event_id(line: bytes) -> str | None:
    """The line's event id, or None if the line is not an event (not a JSON object with a string id)."""
    try:
        return _decode_id(line).id
    except _NOT_AN_EVENT:
        return None


def _digest(line: bytes) -> bytes:
    return hashlib.blake2b(line, digest_size=16).digest()


@dataclass
class CopyCounts:
    """What a copy did. ``already`` counts events skipped because their id was in DST (or came
    earlier in SRC); the ``other_*`` counts are lines that are not events."""

    copied: int = 0
    already: int = 0
    other_copied: int = 0
    other_already: int = 0
    interrupted: bool = False

    def summary(self, src: str, dst: str) -> str:
        """The one line ``warmup log copy`` prints."""
        parts = [f"{self.already:,} already there"]
        if self.other_copied:
            parts.append(_lines(self.other_copied, "copied as they are", "copied as it is"))
        if self.other_already:
            parts.append(_lines(self.other_already, "already there", "already there"))
        events = "event" if self.copied == 1 else "events"
        text = f"copied {self.copied:,} {events} from {src} to {dst} ({', '.join(parts)})"
        if self.interrupted:
            return f"interrupted: {text}; run the same command again to copy the rest"
        return text


def _lines(n: int, plural_tail: str, singular_tail: str) -> str:
    if n == 1:
        return f"1 line that is not an event {singular_tail}"
    return f"{n:,} lines that are not events {plural_tail}"


@dataclass
class DestinationContent:
    """What DST holds already: its event ids and, per hash, how many lines that are not events."""

    ids: set[str]
    others: Counter[bytes]
    lines: int = 0


def read_destination(dst: Log, *, stop: Callable[[], bool] = lambda: False,
                     max_bytes: int = READ_BYTES) -> DestinationContent:
    """Read DST's ids and other lines' hashes (nothing if DST does not exist).

    Raises ``UsageError`` if DST has lines and none of them is an event: it is not an event log.
    """
    content = DestinationContent(set(), Counter())
    try:
        reader = dst.reader()
    except LogMissing:
        return content
    with reader:
        end = reader.end()
        position = dst.START
        ids, others = content.ids, content.others
        while position < end and not stop():
            batch = reader.read(position, max_bytes)
            if not batch.lines:
                break
            for line in batch.lines:
                found = event_id(line)
                if found is None:
                    others[_digest(line)] += 1
                else:
                    ids.add(found)
            content.lines += len(batch.lines)
            position = batch.end
    if content.lines and not content.ids:
        raise UsageError(
            f"{dst.name} is not an event log (none of its {content.lines:,} lines is an event): "
            "refusing to append to it; give a new file, an event log or a nats:// stream as DST"
        )
    return content


def copy_log(src: Log, dst: Log, *, stop: Callable[[], bool] = lambda: False,
             max_bytes: int = READ_BYTES) -> CopyCounts:
    """Copy SRC's lines that DST lacks into DST, in order (see the module's invariants).

    ``stop()`` is asked between lines (and between reads of DST): when it says True the copy ends
    there, with ``interrupted`` set; everything appended so far stays. ``LogMissing`` (exit 2) if
    SRC is not there; DST's appender is opened (DST created) only once SRC and DST were read.
    """
    counts = CopyCounts()
    with src.reader() as reader:  # first: a missing SRC is said before DST is touched
        end = reader.end()
        have = read_destination(dst, stop=stop, max_bytes=max_bytes)
        if stop():
            counts.interrupted = True
            return counts
        ids, others = have.ids, have.others
        appender = dst.appender(fsync="batch")  # (a file is synced once, at the end; a stream acks each)
        try:
            append = appender.append_line
            position = src.START
            while position < end:
                batch = reader.read(position, max_bytes)
                if not batch.lines:
                    break
                for line in batch.lines:
                    if stop():
                        counts.interrupted = True
                        return counts
                    found = event_id(line)
                    if found is not None:
                        if found in ids:
                            counts.already += 1
                            continue
                        append(line)
                        ids.add(found)
                        counts.copied += 1
                    else:
                        digest = _digest(line)
                        if others[digest] > 0:
                            others[digest] -= 1  # (this copy of those bytes is that one in DST)
                            counts.other_already += 1
                            continue
                        append(line)
                        counts.other_copied += 1
                position = batch.end
        finally:
            appender.close()
    return counts


def same_log(src: str, dst: str) -> bool:
    """True if the two specs name one log: the same file (also through links), or the same URL
    (as written: stream names are case-sensitive; ``run_copy`` also compares the backend's names)."""
    if is_stream_url(src) or is_stream_url(dst):
        return is_stream_url(src) and is_stream_url(dst) and src.rstrip("/") == dst.rstrip("/")
    a, b = Path(src), Path(dst)
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return a.resolve() == b.resolve()


class _StopOnSigint:
    """While active, a first SIGINT (Ctrl-C) asks the copy to stop between two lines; a second one
    interrupts at once (the previous handler is back by then)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: signal.Handlers | Callable[[int, FrameType | None], object] | int | None = None

    def __enter__(self) -> _StopOnSigint:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def run_copy(src_spec: str, dst_spec: str, *, replicas: int | None = None) -> int:
    """``warmup log copy``: the counts on stdout, one line; the exit code (0; 130 after Ctrl-C)."""
    if same_log(src_spec, dst_spec):
        raise UsageError(f"SRC and DST are the same log ({src_spec}): give another DST")
    src = open_log_backend(src_spec)
    dst = open_log_backend(dst_spec, replicas=replicas)
    if type(src) is type(dst) and src.name == dst.name:  # (two spellings of one URL, as the backend names it)
        raise UsageError(f"SRC and DST are the same log ({src.name}): give another DST")
    with _StopOnSigint() as sigint:
        counts = copy_log(src, dst, stop=sigint.event.is_set)
    print(counts.summary(src.name, dst.name), flush=True)
    if counts.interrupted:
        print("warmup: interrupted", file=sys.stderr)
        return 130
    return 0
