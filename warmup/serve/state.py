"""What every request handler reaches through ``request.app.state.serve``: one ``ServeState``.

``db`` is the one way a handler reads the tables: the query runs in the thread pool, never on the
event loop (rule 7: SQLite never blocks the loop), and a database the projector has not created yet
reads as empty rather than failing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from anyio import to_thread
from starlette.requests import Request

from warmup.log import Log
from warmup.serve.catalog import TaskCatalog, TaskEntry
from warmup.serve.config import ServeConfig
from warmup.serve.launcher import Launcher
from warmup.tasks.schedule import Schedule

T = TypeVar("T")


@dataclass
class ServeState:
    config: ServeConfig
    log: Log
    catalog: TaskCatalog
    launcher: Launcher
    hub: Any = None  # warmup.serve.stream.EventHub
    scheduler: Any = None  # warmup.serve.schedules.Scheduler
    csrf_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    schedules: dict[str, Schedule] = field(default_factory=dict)  # the scheduled tasks, as last scanned
    _scheduled_generation: int = -1  # the catalog's generation ``schedules`` was taken from

    @property
    def db_path(self) -> Path:
        return self.config.db_path

    @property
    def artifacts(self) -> Path:
        return self.config.artifacts

    async def db(self, query: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``query(db_path, *args, **kwargs)`` in a worker thread."""
        return await to_thread.run_sync(lambda: query(self.config.db_path, *args, **kwargs))

    async def tasks(self) -> list[TaskEntry]:
        """The task files, re-read in a thread where they changed."""
        entries = await to_thread.run_sync(self.catalog.scan)
        if self.catalog.generation != self._scheduled_generation:  # a task file changed: its schedule may have
            self._scheduled_generation = self.catalog.generation
            self.schedules = {e.id: e.task.schedule for e in entries if e.task is not None and e.task.schedule}
            if self.scheduler is not None:
                self.scheduler.wake()
        return entries

    def next_fire(self, task_id: str) -> datetime | None:
        """When the schedule starts ``task_id`` next (jitter included), or None."""
        return self.scheduler.next_fire(task_id) if self.scheduler is not None else None


def serve_state(request: Request) -> ServeState:
    state: ServeState = request.app.state.serve
    return state
