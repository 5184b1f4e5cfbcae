"""The task files of ``--tasks``: what the tasks page lists and what Start runs.

Each ``*.toml`` directly in the folder is loaded with the same loader as ``warmup run`` (so a file
that would fail there shows its one-line error here, and cannot be started). A file is read again
only when its size or modification time changed. ``scan`` is blocking (it reads files, and a task
with ``script`` imports its module): the server calls it in a thread.

What is served of a task is its record (``Task.record()``): ``${env.*}`` references unresolved,
credential literals as ``***``. No resolved value ever leaves the process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warmup.errors import UsageError
from warmup.tasks import Task, load_task

MAX_TASK_FILES = 1000


@dataclass(frozen=True)
class TaskEntry:
    """One task file: ``task`` is None when it does not load (``error`` says why, in one line)."""

    file: str  # its name inside --tasks
    path: Path
    id: str  # the task's id, or the file's stem when it does not load
    task: Task | None
    error: str | None

    @property
    def name(self) -> str:
        return self.task.name if self.task is not None else self.id

    def summary(self) -> dict[str, Any]:
        """What the API and the pages show of it: never a resolved secret."""
        task = self.task
        out: dict[str, Any] = {"id": self.id, "name": self.name, "file": self.file, "error": self.error}
        if task is not None:
            out.update(accounts=len(task.accounts), steps=len(task.steps), concurrency=task.concurrency)
        return out


class TaskCatalog:
    """The task files of one folder, reloaded when they change. Thread-safe."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[int, int], TaskEntry]] = {}
        self.generation = 0  # grows each time a task changed, appeared or went away

    def scan(self) -> list[TaskEntry]:
        """Every task file, in file-name order (blocking: call it in a thread)."""
        with self._lock:
            files = sorted(p for p in self.folder.glob("*.toml") if p.is_file())[:MAX_TASK_FILES]
            fresh: dict[str, tuple[tuple[int, int], TaskEntry]] = {}
            for path in files:
                try:
                    st = path.stat()
                except OSError:
                    continue
                key = (st.st_mtime_ns, st.st_size)
                cached = self._cache.get(path.name)
                fresh[path.name] = cached if cached is not None and cached[0] == key else (key, _load(path))
            if fresh.keys() != self._cache.keys() or any(fresh[k][1] is not self._cache[k][1] for k in fresh):
                self.generation += 1
            self._cache = fresh
            entries = [entry for _, entry in fresh.values()]
        return _mark_duplicates(entries)

    def get(self, task_id: str) -> TaskEntry | None:
        """The loaded entry with this id (blocking: it scans)."""
        for entry in self.scan():
            if entry.id == task_id and entry.task is not None:
                return entry
        return None


def _load(path: Path) -> TaskEntry:
    try:
        task = load_task(path)
    except UsageError as exc:
        return TaskEntry(path.name, path, path.stem, None, str(exc))
    except (OSError, ValueError) as exc:  # pragma: no cover - load_task turns these into UsageError
        return TaskEntry(path.name, path, path.stem, None, f"task file {path}: {exc}")
    return TaskEntry(path.name, path, task.id, task, None)


def _mark_duplicates(entries: list[TaskEntry]) -> list[TaskEntry]:
    """Two files with one task id: the second cannot be started (which would it be?)."""
    seen: dict[str, str] = {}
    out = []
    for entry in entries:
        if entry.task is not None and entry.id in seen:
            entry = TaskEntry(entry.file, entry.path, entry.id, None,
                              f"task file {entry.path}: id {entry.id!r} is also the id of {seen[entry.id]}")
        elif entry.task is not None:
            seen[entry.id] = entry.file
        out.append(entry)
    return out

