"""Times the user types (``--since``, ``--until``): an ISO-8601 instant or an age such as ``2h``;
and durations set in the environment (``WARMUP_GRACE_S``, ``WARMUP_LEASE_TTL_S``...).

One parser for every command, so they all accept the same forms and all answer a bad one with the
same one-line error (exit 2), out-of-range values included.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta

from warmup.errors import UsageError

LOG_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # the log's own format (envelope.utc_now)
_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, option: str, now: datetime | None = None) -> datetime:
    """An aware UTC datetime for ``text``: ISO-8601 (UTC unless it has an offset) or an age (``15m``)."""
    raw = text.strip()
    try:
        age = _AGE.match(raw)
        if age:
            return (now or datetime.now(UTC)) - timedelta(seconds=float(age.group(1)) * _UNITS[age.group(2)])
        when = datetime.fromisoformat(raw)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise UsageError(
            f"{option} {text!r} is not a time: give ISO-8601 such as 2026-11-29T07:00:00Z or 2026-11-29, "
            "or an age such as 30s, 15m, 2h, 1d"
        ) from None


def parse_log_ts(text: str, option: str) -> str:
    """``parse_time`` in the log's ts format, which orders like time when compared as strings."""
    return parse_time(text, option).strftime(LOG_TS_FORMAT)


def format_duration_ms(ms: float | None) -> str:
    """A duration for people: ``850 ms``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``; ``""`` for None."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from one log time to another (to the millisecond), or None if either is missing or bad."""
    if not start or not end:
        return None
    try:
        return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)
    except ValueError:
        return None


def seconds_from_env(name: str, default: float, *, minimum: float) -> float:
    """The number of seconds the environment variable ``name`` sets (``default`` if unset or empty);
    ``UsageError`` (one line, exit 2) if it is not a number or is under ``minimum``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a number of seconds") from None
    if not value >= minimum:  # (NaN too)
        raise UsageError(f"{name} must be at least {minimum:g} seconds, not {raw}")
    return value
