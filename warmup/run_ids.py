"""Run ids as people type them: a whole id, a unique prefix of one, or ``last``; one resolver for every command.

``show``, ``report``, ``run --resume``, ``run --retry-failed`` and ``replay --run`` all go through
``resolve_run_id``, so they accept and refuse the same things with the same words:

- a whole id names that run, even if it is also the prefix of a longer one;
- ``last`` names the run started last in the log (the last ``run_started`` line);
- a prefix names the one run whose id starts with it; several matches are refused with a few of them.

Given a task id (``warmup run TASK --resume last``), ``last`` names the latest run of that task, and
a whole id or a prefix must name a run of that task: another task's run is refused in one line.

The runs known are read from the event log (``runs_in_log``), never from the database: ``warmup run``
must not import sqlite3, and the log is the record. Reading it is cheap: the log is read (through its
``Log`` reader) 4 MB of complete lines at a time, searched for the bytes ``"run_started"`` in C, and only the
lines holding them are decoded (one per run), so a 100 MB log is scanned in a fraction of a second. This
module imports nothing that opens a database.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import orjson

from warmup.errors import UsageError, no_run
from warmup.log import Log, as_log

LAST = "last"
NEEDLE = b'"run_started"'
SHOWN_WHEN_AMBIGUOUS = 3
READ_BYTES = 4 << 20


def runs_in_log(log: Log | str | os.PathLike[str]) -> list[str]:
    """The run ids of the log's ``run_started`` events, in log order (oldest first), each once."""
    return list(run_tasks_in_log(log))


def run_tasks_in_log(log: Log | str | os.PathLike[str]) -> dict[str, str | None]:
    """Run id -> its task id (None if not recorded), in log order (oldest first), each run once.

    Raises ``UsageError`` (the one "no event log" message) when there is no log; a path that is not
    a regular file (a FIFO, a folder) is refused by the file backend without blocking on it. The file
    is read, not mapped: a writer cutting a torn tail under a mapping would kill this process (SIGBUS).
    """
    log = as_log(log).narrowed(types=("run_started",))  # a stream reads only those subjects
    seen: dict[str, str | None] = {}
    with log.reader() as reader:
        position = log.START
        while (batch := reader.read(position, READ_BYTES)).lines:
            data = b"\n".join(batch.lines) + b"\n"  # complete lines only (a torn last line is left out)
            _scan(data, len(data), seen)
            position = batch.end
    return seen


def _scan(data: bytes, end_of_lines: int, seen: dict[str, str | None]) -> None:
    """Add to ``seen`` the run ids (-> task ids) of the ``run_started`` lines among ``data[:end_of_lines]``."""
    pos = 0
    while (hit := data.find(NEEDLE, pos, end_of_lines)) >= 0:
        start = data.rfind(b"\n", 0, hit) + 1
        end = data.find(b"\n", hit, end_of_lines)
        pos = end + 1
        try:
            event = orjson.loads(data[start:end])
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("type") == "run_started":
            run_id = event.get("run_id")
            task_id = event.get("task_id")
            if isinstance(run_id, str) and run_id:
                seen.setdefault(run_id, task_id if isinstance(task_id, str) else None)


def resolve_run_id(text: str, known: Sequence[str], where: object) -> str:
    """The one run ``text`` names among ``known`` (oldest first); ``where`` names the source in messages.

    Exit 2 (``UsageError``) for no match or several; never guesses between runs.
    """
    if text == LAST:
        if not known:
            raise UsageError(f"no run in {where} yet, so 'last' names none: start one with `warmup run TASK.toml`")
        return known[-1]
    if text in known:
        return text
    matches = [r for r in known if r.startswith(text)] if text else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(matches[-SHOWN_WHEN_AMBIGUOUS:])
        more = f" and {len(matches) - SHOWN_WHEN_AMBIGUOUS} more" if len(matches) > SHOWN_WHEN_AMBIGUOUS else ""
        raise UsageError(f"{text!r} matches {len(matches)} runs in {where} ({shown}{more}): give more of the run id")
    raise UsageError(no_run(text, where))


def resolve_from_log(log: Log | str | os.PathLike[str], text: str, *, task_id: str | None = None) -> str:
    """``resolve_run_id`` over the runs of the event log ``log`` (a ``Log`` or its path).

    With ``task_id``: ``last`` is the latest run of that task, and a run of another task is refused.
    """
    log = as_log(log)
    if task_id is None:
        return resolve_run_id(text, runs_in_log(log), log.name)
    tasks = run_tasks_in_log(log)
    if text == LAST:
        own = [run for run, task in tasks.items() if task == task_id]
        if not own:
            raise UsageError(f"no run of task {task_id!r} in {log.name} yet, so 'last' names none: "
                             "run the task file without --resume/--retry-failed")
        return own[-1]
    run_id = resolve_run_id(text, list(tasks), log.name)
    if tasks[run_id] != task_id:
        raise UsageError(f"run {run_id} is a run of task {tasks[run_id]!r}, not of task {task_id!r}: "
                         f"give a run of {task_id!r} (or 'last'), or leave out the task file")
    return run_id
