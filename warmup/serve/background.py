"""What runs beside the requests, on the server's loop: the launcher's watch on the log, the
scheduler, and a light re-scan of ``--tasks`` so a new or edited task file is picked up.

Nothing here blocks the loop: the log (``last_scheduled``), the tables and the task files are read
in threads. A firing does not wait for its run to start (``wait_s=0``): a slow start must not hold
the other tasks' firings; a run that fails to start says so when its process exits.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from anyio import to_thread

from warmup.runs.liveness import Liveness, liveness_for
from warmup.runs.origin import SCHEDULE, RunOrigin
from warmup.serve import queries
from warmup.serve.control import Problem, start_run
from warmup.serve.schedules import Scheduler, last_scheduled
from warmup.serve.state import ServeState
from warmup.tasks.schedule import log_time, shown_time

TASKS_RESCAN_S = 10.0  # a task file added or edited is scheduled within this long (a stat per file)
SWEEP_S = 30.0  # how often the liveness of runs in flight started elsewhere is checked
WATCH_RETRY_S = 0.2
WATCHED = ("run_started", "run_finished")


async def start_background(state: ServeState) -> list[asyncio.Task[Any]]:
    """Start the hub, the launcher's watch, the scheduler and the re-scan; the tasks to cancel at the end."""
    tasks: list[asyncio.Task[Any]] = []
    if state.hub is not None:
        state.hub.start()
        tasks.append(asyncio.create_task(_watch(state), name="launcher watch"))
    state.launcher.seed(await to_thread.run_sync(_live_runs, state))
    await state.tasks()
    last_fired = await to_thread.run_sync(last_scheduled, state.log)
    state.scheduler = Scheduler(
        tasks=lambda: state.schedules, start=lambda task_id, due: _fire(state, task_id, due),
        running=state.launcher.running, last_fired=last_fired, say=lambda line: state.launcher.say(line),
    )
    tasks.append(asyncio.create_task(state.scheduler.run(), name="scheduler"))
    tasks.append(asyncio.create_task(_rescan(state), name="tasks rescan"))
    tasks.append(asyncio.create_task(_sweep(state), name="runs sweep"))
    return tasks


async def _watch(state: ServeState) -> None:
    """Every run_started and run_finished followed from the log goes to the launcher (which runs are
    in flight). A subscription the hub ends (too far behind, a replaced log) is taken up again from
    the last event seen: the gap is read from the log, so none is missed."""
    hub = state.hub
    after = None
    while not hub.stopped:
        async for item in hub.subscribe(after=after, run_id=None, follow=True, types=WATCHED):
            state.launcher.note(item.event)
            after = item.position
        if not hub.stopped:
            await asyncio.sleep(WATCH_RETRY_S)


async def _sweep(state: ServeState) -> None:
    """Runs in flight that are not ours are checked now and then: one whose lease nobody holds any
    more died without run_finished, and must not keep its task "running" (nor its schedule skipped)."""
    liveness = liveness_for(state.log)
    while True:
        await asyncio.sleep(SWEEP_S)
        foreign = state.launcher.foreign()
        if foreign:
            dead = await to_thread.run_sync(_dead, liveness, foreign)
            state.launcher.forget(dead)


async def _rescan(state: ServeState) -> None:
    while True:
        await asyncio.sleep(TASKS_RESCAN_S)
        await state.tasks()


async def _fire(state: ServeState, task_id: str, due: datetime) -> str | None:
    try:
        launch = await start_run(state, task_id, RunOrigin(SCHEDULE, log_time(due)), wait_s=0)
    except Problem as exc:
        state.launcher.say(f"schedule: task {task_id}: the firing due at {shown_time(due)} did not start: "
                           f"{exc.message}")
        return None
    return launch.run_id


def _dead(liveness: Liveness, run_ids: list[str]) -> list[str]:
    return [run_id for run_id in run_ids if liveness.run_holder(run_id) is None]


def _live_runs(state: ServeState) -> dict[str, str]:
    """Runs the tables show RUNNING whose lease is held: in flight since before this server started."""
    running: dict[str, str] = queries.running_runs(state.db_path)
    dead = set(_dead(liveness_for(state.log), list(running)))
    return {run_id: task_id for run_id, task_id in running.items() if run_id not in dead}
