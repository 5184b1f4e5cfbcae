"""Times the user types (``--since``, ``--until``): an ISO-8601 instant or an age such as ``2h``.

One parser for every command, so they all accept the same forms and all answer a bad one with the
same one-line error (exit 2), out-of-range values included.
"""

from __future__ import annotations

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
