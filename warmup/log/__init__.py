"""The event log behind one interface (``base``): ``file`` is its first backend.

``open_log_backend(spec)`` turns a ``--log`` value into a ``Log``.
"""

from __future__ import annotations

import os

from warmup.errors import UsageError
from warmup.log.base import Batch, Log, LogAppender, LogFollower, LogMismatch, LogReader, LogWatch, Position
from warmup.log.file import FileLog

__all__ = [
    "Batch",
    "FileLog",
    "Log",
    "LogAppender",
    "LogFollower",
    "LogMismatch",
    "LogReader",
    "LogWatch",
    "Position",
    "open_log_backend",
]


def open_log_backend(spec: str | os.PathLike[str], *, poll_s: float | None = None) -> Log:
    """The ``Log`` that ``spec`` names: a path is a ``FileLog``; a ``nats://`` URL is not available yet."""
    if isinstance(spec, str) and spec.lower().startswith(("nats://", "tls://nats", "nats+tls://")):
        raise UsageError("the nats backend is not available yet (issue 12)")
    return FileLog(spec, poll_s=poll_s)
