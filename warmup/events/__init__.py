"""The event log: the envelope of one event, the writer that appends them, the reader that follows."""

from warmup.events.envelope import SCHEMA_VERSION, Event, InvalidEvent, decode, encode, make_event
from warmup.events.follower import Follower
from warmup.events.reader import Line, read_lines
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
    "Follower",
    "make_event",
    "read_lines",
]
