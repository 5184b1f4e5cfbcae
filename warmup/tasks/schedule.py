"""A task's ``schedule``: when it is due (croniter, in the task's ``timezone``) and its jitter.

Defined with the task (``Task.schedule``) so that loading and checking a task file needs nothing
of the server; ``warmup.serve.schedules`` has the ``Scheduler`` that fires it. Invariants:

- **Due times** are the instants the cron expression names in its zone, returned in UTC. Five
  fields (minute hour day month weekday), or six with the seconds LAST (croniter's order:
  ``"* * * * * */2"`` is every 2 seconds). croniter's random (``R``) and hashed (``H``) values are
  refused: every server must compute the same times.
- **Jitter is deterministic**: a due time fires at ``due + jitter(task_id, due)``, a hash of both in
  ``[0, jitter_s)``. So the dashboard shows the exact next start, and two servers agree on it.

croniter is imported only when a schedule is computed, so loading a task without one (every
``warmup run``) does not pay for it.
"""

from __future__ import annotations

import hashlib
import math
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cached_property
from typing import Any

from warmup.times import LOG_TS_FORMAT

DEFAULT_TIMEZONE = "UTC"
MAX_JITTER_S = 7 * 86400  # a week: enough to spread a weekly schedule
_RANDOM_OR_HASHED = re.compile(r"(?<![A-Za-z])[HR](?![A-Za-z])")
_TICK = timedelta(microseconds=1)
# A jitter is shorter than the time between two due times (checked when built), so the latest due
# whose fire time has come is one of the last two: this bound is only a guard.
_MAX_LOOK_BACK = 4
GAP_SAMPLES = 25  # due times looked at for the shortest interval (a day of hours, a month of days)


def log_time(when: datetime) -> str:
    """``when`` (aware) in the log's format, UTC: what ``warmup run --scheduled-for`` takes."""
    return when.astimezone(UTC).strftime(LOG_TS_FORMAT)


def shown_time(when: datetime) -> str:
    """A due time in messages: ``2026-11-29T06:00:00Z`` (UTC, to the second, or finer if it has it)."""
    text = when.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def _utc(when: datetime) -> datetime:
    """``when`` in UTC (croniter may hand back ``fold=1``, meaningless there: cleared)."""
    return when.astimezone(UTC).replace(fold=0)


def _zone(name: str) -> tzinfo:
    """The zone ``name``; ValueError (the message's end) if it is not an IANA name zoneinfo knows."""
    if name == DEFAULT_TIMEZONE:
        return UTC
    if name.startswith("/") or ".." in name or "\\" in name or not name:  # zoneinfo would read a path
        raise ValueError(f"timezone {name!r} is not a time zone (use an IANA name such as 'Europe/Paris')")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {name!r} is not a time zone (use an IANA name such as 'Europe/Paris')") from None


def _croniter(cron: str, start: datetime) -> Any:
    from croniter import croniter  # imported here: see the module's docstring

    return croniter(cron, start)


@dataclass(frozen=True)
class Schedule:
    """A task's schedule, checked when built: ``ValueError`` with a message that names the key.

    ``cron``: 5 fields, or 6 with seconds last, or one of croniter's ``@daily``-style names;
    ``timezone``: an IANA zone the cron is read in; ``jitter_s``: 0 to ``MAX_JITTER_S``;
    ``catch_up``: whether a firing missed while no server ran happens once at start.
    """

    cron: str
    timezone: str = DEFAULT_TIMEZONE
    jitter_s: float = 0
    catch_up: bool = True

    def __post_init__(self) -> None:
        self.zone  # noqa: B018 (checks the zone)
        fields = self.cron.split()
        if not self.cron.startswith("@") and len(fields) not in (5, 6):
            raise ValueError(
                f"schedule {self.cron!r} is not a cron expression (give 5 fields: minute hour day month weekday, "
                "or 6 with the seconds last)"
            )
        if _RANDOM_OR_HASHED.search(self.cron):
            raise ValueError(
                f"schedule {self.cron!r} is not a cron expression warmup takes (H and R, random or hashed "
                "values, would differ from one server to the next; use jitter_s to spread the starts)"
            )
        if not (isinstance(self.jitter_s, int | float) and 0 <= self.jitter_s <= MAX_JITTER_S):
            raise ValueError(f"jitter_s must be from 0 to {MAX_JITTER_S} seconds (a week), not {self.jitter_s!r}")
        probe = datetime(2026, 1, 1, tzinfo=UTC)
        try:
            _croniter(self.cron, probe.astimezone(self.zone))
        except (ValueError, KeyError, TypeError) as exc:  # croniter's CroniterError is a ValueError
            raise ValueError(f"schedule {self.cron!r} is not a cron expression ({exc})") from None
        try:
            self.due_after(probe)
        except ValueError:  # CroniterBadDateError: no date matches (30 February)
            raise ValueError(f"schedule {self.cron!r} is never due (no date matches it)") from None
        if self.jitter_s:
            gap = self.shortest_gap(probe)
            if self.jitter_s >= gap:
                raise ValueError(
                    f"jitter_s = {self.jitter_s:g} is not shorter than the time between two firings of "
                    f"{self.cron!r} ({gap:g} s): a start would come after the next one is due"
                )

    def shortest_gap(self, start: datetime, samples: int = GAP_SAMPLES) -> float:
        """The shortest time in seconds between two consecutive due times among the first ``samples``."""
        it = _croniter(self.cron, start.astimezone(self.zone))
        dues = [_utc(it.get_next(datetime)) for _ in range(samples)]
        return min((b - a).total_seconds() for a, b in zip(dues, dues[1:], strict=False))

    @cached_property
    def zone(self) -> tzinfo:
        return _zone(self.timezone)

    def record(self) -> dict[str, Any]:
        """The task-file keys that give this schedule (``Task.record``: they are not secret)."""
        return {"schedule": self.cron, "timezone": self.timezone, "jitter_s": self.jitter_s,
                "catch_up": self.catch_up}

    # -- due times (all aware; returned in UTC) ------------------------------------------------
    def due_after(self, t: datetime) -> datetime:
        """The first due time strictly after ``t`` (aware), in UTC."""
        return _utc(_croniter(self.cron, t.astimezone(self.zone)).get_next(datetime))

    def due_at_or_before(self, t: datetime) -> datetime | None:
        """The latest due time at or before ``t`` (aware), in UTC; None if there is none."""
        try:
            before = _utc(_croniter(self.cron, t.astimezone(self.zone)).get_prev(datetime))
        except ValueError:  # no earlier date matches within croniter's search
            return None
        following = self.due_after(before)  # croniter's get_prev is strictly before t: t itself may be due
        return following if following <= t else before

    def jitter(self, task_id: str, due: datetime) -> float:
        """Seconds after ``due`` that ``task_id`` fires: a hash of both, in ``[0, jitter_s)``.

        Deterministic (the same on every server, at every call), spread evenly over the range.
        """
        if not self.jitter_s:
            return 0.0
        digest = hashlib.sha256(f"{task_id}\0{log_time(due)}".encode()).digest()
        fraction = (int.from_bytes(digest[:8], "big") >> 11) / 2**53  # 53 bits: exactly representable, < 1
        return min(fraction * self.jitter_s, math.nextafter(float(self.jitter_s), 0.0))

    def fire_time(self, task_id: str, due: datetime) -> datetime:
        """When ``task_id`` starts for ``due``: ``due`` plus its jitter, in UTC."""
        return _utc(due + timedelta(seconds=self.jitter(task_id, due)))

    def latest_ready(self, task_id: str, now: datetime) -> datetime | None:
        """The latest due time whose fire time is at or before ``now``; None if none is."""
        due = self.due_at_or_before(now)
        for _ in range(_MAX_LOOK_BACK):
            if due is None or self.fire_time(task_id, due) <= now:
                return due
            due = self.due_at_or_before(due - _TICK)
        return None


# -- what the log says was fired ---------------------------------------------------------------
