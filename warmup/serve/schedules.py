"""The ``Scheduler`` that starts the runs of scheduled tasks (``warmup.tasks.schedule`` says when).

A task file may say ``schedule = "0 6 * * *"`` (cron, read by croniter in the task's ``timezone``,
default UTC), ``jitter_s = 600`` and ``catch_up = true`` (docs/tasks.md, "Schedules"). Invariants:

- **Each due time fires at most once**: the scheduler remembers, per task, the last due it handled
  (fired, skipped or refused); a restarted server learns it from the log (``last_scheduled``: the
  ``scheduled_for`` of the ``run_started`` events with ``trigger = "schedule"``).
- **Catch-up**, at start only: a task whose latest due time (whose fire time has passed) is later
  than the last one it fired for fires ONCE at start, for that latest due (``catch_up = true``),
  whatever number of firings were missed; with ``catch_up = false`` that firing is said to be
  skipped. A task never fired before does not catch up: its schedule starts now.
- **A task still running is not started again**: its firing is skipped, and said.
- The ``Scheduler`` runs on the server's event loop and never blocks it: it reads no file and no
  log (``last_scheduled`` is given to it, read in a thread by the caller); croniter's arithmetic is
  all it computes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from warmup.events.envelope import is_timestamp
from warmup.log.base import Log, LogMissing
from warmup.runs.origin import SCHEDULE
from warmup.tasks.schedule import Schedule, shown_time

MAX_SLEEP_S = 30.0  # the scheduler re-reads the clock at least this often (wall-clock jumps)
_READ_BYTES = 4 << 20
_NEEDLE = b'"run_started"'


def last_scheduled(log: Log) -> dict[str, datetime]:
    """Task id -> the latest ``scheduled_for`` of its ``run_started`` events with ``trigger = "schedule"``.

    Blocking (it reads the log): call it in a thread. No log yet gives ``{}``. Lines that are not
    valid JSON, or whose fields are missing or not of their type, are skipped. Only the lines
    holding ``"run_started"`` are parsed (searched for in C, as ``warmup.run_ids`` does).
    """
    view = log.narrowed(types={"run_started"})
    found: dict[str, datetime] = {}
    try:
        reader = view.reader()
    except LogMissing:
        return found
    with reader:
        position = view.START
        while (batch := reader.read(position, _READ_BYTES)).lines:
            for line in batch.lines:
                if _NEEDLE in line:
                    _note(line, found)
            position = batch.end
    return found


def _note(line: bytes, found: dict[str, datetime]) -> None:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return
    if not isinstance(event, dict) or event.get("type") != "run_started" or event.get("trigger") != SCHEDULE:
        return
    task_id, when = event.get("task_id"), event.get("scheduled_for")
    if not isinstance(task_id, str) or not isinstance(when, str) or not is_timestamp(when):
        return
    due = datetime.fromisoformat(when).astimezone(UTC)
    if task_id not in found or due > found[task_id]:
        found[task_id] = due


# -- the scheduler -----------------------------------------------------------------------------
def _utc_now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """Starts each scheduled task at its fire times, on the server's event loop.

    ``tasks()`` gives the scheduled tasks now (read at every pass, so a changed task file counts at
    the next one; ``wake()`` makes that pass happen at once). ``start(task_id, due)`` starts a run
    for that due time and returns its run id, or None if it could not. ``running(task_id)`` is the
    id of the task's run in flight, or None. ``last_fired`` (from ``last_scheduled``) is the latest
    due time each task was fired for. ``say`` gets one line per decision. ``clock`` (aware UTC now)
    and ``sleep`` (async, seconds) are for tests.

    State, per task: ``_handled`` the last due time handled (fired, skipped or refused: never
    handled twice); ``_next`` the first due time after it, which fires at its ``fire_time``.
    """

    def __init__(
        self,
        *,
        tasks: Callable[[], Mapping[str, Schedule]],
        start: Callable[[str, datetime], Awaitable[str | None]],
        running: Callable[[str], str | None],
        last_fired: Mapping[str, datetime],
        say: Callable[[str], None],
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._tasks = tasks
        self._start = start
        self._running = running
        self._last_fired = dict(last_fired)
        self._say = say
        self._clock = clock
        self._sleep = sleep
        self._schedules: dict[str, Schedule] = {}
        self._handled: dict[str, datetime | None] = {}
        self._next: dict[str, datetime] = {}
        self._woken = asyncio.Event()

    # -- for the dashboard and the server --------------------------------------------------------
    def next_fire(self, task_id: str) -> datetime | None:
        """When ``task_id`` fires next (UTC), jitter included; None if it has no schedule."""
        schedule = self._schedules.get(task_id)
        if schedule is None or task_id not in self._next:
            schedule = self._tasks().get(task_id)
            if schedule is None:
                return None
            due = self._first_due(task_id, schedule, self._clock())[1]
            return schedule.fire_time(task_id, due)
        return schedule.fire_time(task_id, self._next[task_id])

    def wake(self) -> None:
        """Re-read ``tasks()`` now (a task file changed). Call it on the scheduler's event loop."""
        self._woken.set()

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        """The catch-up pass, then each task at its fire times, until cancelled."""
        now = self._clock()
        for task_id, schedule in sorted(self._tasks().items()):
            missed, _ = self._first_due(task_id, schedule, now)
            self._track(task_id, schedule, missed)
            fired = self._last_fired.get(task_id)
            if missed is None or fired is None or missed <= fired:
                continue
            if schedule.catch_up:
                self._say(f"schedule: task {task_id} missed its firing due at {shown_time(missed)}: it runs once now")
                await self._fire(task_id, missed)
            else:
                self._say(f"schedule: task {task_id} missed its firing due at {shown_time(missed)}: skipped "
                          "(catch_up = false)")
        while True:
            now = self._clock()
            self._refresh(now)
            for task_id in sorted(self._next):
                schedule, due = self._schedules[task_id], self._next[task_id]
                if schedule.fire_time(task_id, due) > now:
                    continue
                ready = schedule.latest_ready(task_id, now)
                if ready is not None and ready > due:  # behind (a suspended machine, a clock jump): once
                    self._say(f"schedule: task {task_id} is late: the firings due from {shown_time(due)} to "
                              f"{shown_time(ready)} fire once, for {shown_time(ready)}")
                    due = ready
                self._track(task_id, schedule, due)
                await self._fire(task_id, due)
            await self._pause(self._clock())

    def _first_due(self, task_id: str, schedule: Schedule, now: datetime) -> tuple[datetime | None, datetime]:
        """(the latest due already ready at ``now`` or None, the first due not yet ready)."""
        missed = schedule.latest_ready(task_id, now)
        return missed, schedule.due_after(missed if missed is not None else now)

    def _track(self, task_id: str, schedule: Schedule, handled: datetime | None) -> None:
        """Note ``handled`` (and anything the log says was fired) as done; the next due follows it."""
        fired = self._last_fired.get(task_id)
        if fired is not None and (handled is None or fired > handled):
            handled = fired
        self._schedules[task_id] = schedule
        self._handled[task_id] = handled
        if handled is None:
            self._next[task_id] = self._first_due(task_id, schedule, self._clock())[1]
        else:
            self._next[task_id] = schedule.due_after(handled)

    def _refresh(self, now: datetime) -> None:
        """Follow ``tasks()``: a new task (or a changed schedule) starts from now, without catch-up."""
        current = dict(self._tasks())
        for task_id in set(self._schedules) - set(current):
            self._schedules.pop(task_id)
            self._next.pop(task_id, None)
            self._handled.pop(task_id, None)
        for task_id, schedule in current.items():
            if self._schedules.get(task_id) == schedule:
                continue
            missed, _ = self._first_due(task_id, schedule, now)
            before = self._handled.get(task_id)
            self._track(task_id, schedule, max((d for d in (missed, before) if d is not None), default=None))

    async def _pause(self, now: datetime) -> None:
        """Sleep until the next fire time, at most ``MAX_SLEEP_S``, or until ``wake()``."""
        times = [self._schedules[t].fire_time(t, due) for t, due in self._next.items()]
        wait = min([MAX_SLEEP_S, *((when - now).total_seconds() for when in times)])
        if wait > 0 and not self._woken.is_set():
            sleeping = asyncio.ensure_future(self._sleep(wait))
            woken = asyncio.ensure_future(self._woken.wait())
            try:
                await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in (sleeping, woken):
                    waiting.cancel()
        self._woken.clear()  # (the pass that follows reads tasks() again)

    async def _fire(self, task_id: str, due: datetime) -> None:
        """Start ``task_id`` for ``due`` unless it is still running; say what happened."""
        self._last_fired[task_id] = max(due, self._last_fired.get(task_id, due))
        shown = shown_time(due)
        try:
            run_id = self._running(task_id)
            if run_id is not None:
                self._say(f"schedule: task {task_id} is still running (run {run_id}): the firing due at {shown} "
                          "is skipped")
                return
            started = await self._start(task_id, due)
        except Exception as exc:  # (a failed start must not stop the other schedules)
            self._say(f"schedule: task {task_id}: the firing due at {shown} could not start ({exc})")
            return
        if started is None:
            self._say(f"schedule: task {task_id}: the firing due at {shown} could not start")
        else:
            self._say(f"schedule: task {task_id} started run {started} (due at {shown})")
