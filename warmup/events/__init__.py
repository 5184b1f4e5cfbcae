"""The event log: the envelope of one event, the writer that appends them, the reader that follows."""

from warmup.events.envelope import SCHEMA_VERSION, Event, InvalidEvent, decode, encode, make_event
from warmup.events.reader import Line, follow, read_lines
from warmup.events.writer import EventWriter, LogWriteError

__all__ = [
    "SCHEMA_VERSION",
    "Event",
    "EventWriter",
    "InvalidEvent",
    "Line",
    "LogWriteError",
    "decode",
    "encode",
    "follow",
    "make_event",
    "read_lines",
]
