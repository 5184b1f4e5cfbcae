"""Which log lines ``--run``, ``--account``, ``--type`` and ``--since`` select.

A line matches when it is a JSON object whose fields match every filter given. The fields are
read from the object as it is, valid event or not, so an event of a type this release does not
know still matches ``--run``. A line that is not a JSON object matches only when no filter is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from warmup.errors import UsageError
from warmup.events.envelope import EVENT_TYPES
from warmup.times import LOG_TS_FORMAT, parse_time

TS_FORMAT = LOG_TS_FORMAT


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO-8601 instant (UTC unless it has an offset) or an age such as ``15m``, ``2h``."""
    return parse_time(text, "--since", now)


def event_time(ts: object) -> datetime | None:
    """An event's ``ts`` as an aware datetime, or None if it is not a time."""
    if not isinstance(ts, str):
        return None
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _needle(value: str) -> bytes:
    """The bytes a field equal to ``value`` must put in the line (its JSON string, quotes included)."""
    return orjson.dumps(value)


@dataclass(frozen=True)
class Filters:
    run_id: str | None = None
    account_id: str | None = None
    types: frozenset[str] = frozenset()
    since: datetime | None = None

    @classmethod
    def from_options(
        cls, run_id: str | None, account_id: str | None, types: tuple[str, ...], since: str | None
    ) -> Filters:
        unknown = sorted(t for t in types if t not in EVENT_TYPES)
        if unknown:
            raise UsageError(
                f"--type {unknown[0]!r} is not an event type; the types are: {', '.join(EVENT_TYPES)}"
            )
        return cls(run_id, account_id, frozenset(types), parse_since(since) if since is not None else None)

    @property
    def active(self) -> bool:
        return bool(self.run_id is not None or self.account_id is not None or self.types or self.since)

    def may_match(self, data: bytes) -> bool:
        """A cheap test on the raw bytes: False means the line cannot match (no JSON parse needed).

        A field equal to the id holds the id's JSON string in the line, unless the writer escaped
        characters orjson writes plainly (``\\uXXXX``, ``\\/``): such a line is always parsed.
        """
        for value in (self.run_id, self.account_id):
            if value is not None and _needle(value) not in data and b"\\u" not in data and b"\\/" not in data:
                return False
        return True

    def matches(self, obj: Any) -> bool:
        """Whether a parsed line matches; ``obj`` is whatever the line's JSON was (None if not JSON)."""
        if not self.active:
            return True
        if not isinstance(obj, dict):
            return False
        if self.run_id is not None and obj.get("run_id") != self.run_id:
            return False
        if self.account_id is not None and obj.get("account_id") != self.account_id:
            return False
        if self.types and obj.get("type") not in self.types:
            return False
        if self.since is not None:
            when = event_time(obj.get("ts"))
            if when is None or when < self.since:
                return False
        return True
