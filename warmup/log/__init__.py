"""The event log behind one interface (``base``): ``file`` is its first backend.

``open_log_backend(spec)`` turns a ``--log`` value into a ``Log``.
"""

from __future__ import annotations

import os

from warmup.errors import UsageError
from warmup.events.follower import Notice
from warmup.events.reader import Line
from warmup.log.base import (
    Batch,
    Log,
    LogAppender,
    LogFollower,
    LogMismatch,
    LogMissing,
    LogReader,
    LogWatch,
    Position,
)
from warmup.log.file import FileLog
from warmup.log.nats_url import is_nats_url

__all__ = [
    "Batch",
    "FileLog",
    "Line",
    "Log",
    "LogAppender",
    "LogFollower",
    "LogMismatch",
    "LogMissing",
    "LogReader",
    "LogWatch",
    "Notice",
    "Position",
    "as_log",
    "open_log_backend",
]


def open_log_backend(
    spec: str | os.PathLike[str], *, poll_s: float | None = None, replicas: int | None = None
) -> Log:
    """The ``Log`` that ``spec`` names: a ``nats://`` or ``tls://`` URL is a ``NatsLog`` (the stream
    gets ``replicas`` when created), anything else a path, a ``FileLog``."""
    if is_nats_url(spec):
        try:
            from warmup.log.nats import NatsLog  # imports nats-py only when a URL asks for it
        except ModuleNotFoundError as exc:
            if exc.name is None or not exc.name.startswith("nats"):
                raise
            raise UsageError("a nats:// log needs nats-py: pip install 'warmup[nats]'") from None

        return NatsLog(str(spec), replicas=replicas)
    return FileLog(spec, poll_s=poll_s)


def as_log(log: Log | str | os.PathLike[str]) -> Log:
    """``log`` itself if it is a ``Log``, else ``open_log_backend(log)``: so a consumer takes either."""
    return log if isinstance(log, Log) else open_log_backend(log)
