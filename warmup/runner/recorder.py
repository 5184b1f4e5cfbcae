"""The runner's only way to write: events for one run, each scrubbed of secrets, through the log's appender.

Invariants:

- Every free-text string of every event (error texts, URLs, reasons, names...: every field not
  in ``STRUCTURAL``, at any depth) passes through the task's scrubber before it is encoded, so a
  secret value can only reach the log as ``***``.
- The ``STRUCTURAL`` fields (ids, paths, hashes, enumerations, the host, the task's record) are
  written as they are: ``***`` inside an id or a path would name an account, a file or a run that
  does not exist. ``warmup.tasks`` refuses a task whose secret value appears in an id or a file
  name, or (4 characters or more) anywhere else in its record, so they hold no secret either;
  a secret shorter than that may occur in the record by chance (``"com"`` in a URL), and the
  runner warns about it once.
- After the first failed append (disk full, permissions...) the recorder is *dead*: it writes
  nothing more, so the log never gets a later event whose predecessors are missing. The runner
  sees ``dead`` and stops; the message goes to the user once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from warmup.events.envelope import Event
from warmup.events.writer import LogWriteError
from warmup.log import LogAppender
from warmup.tasks import Scrubber

# Written unscrubbed: identifiers, file paths, digests, enumerations, where the runner runs, and the
# task's record (ids, file names and templates with references unresolved). A new field is scrubbed
# unless it is added here.
STRUCTURAL = frozenset(
    {"account_id", "task_id", "accounts", "task", "path", "sha256", "kind", "status", "action", "host",
     "resumed_from", "worker", "trigger", "scheduled_for"}
)


TASK_ID_TYPES = frozenset({"account_finished", "run_finished"})


class Recorder:
    def __init__(self, writer: LogAppender, run_id: str, scrub: Scrubber, task_id: str | None = None) -> None:
        self.writer = writer
        self.run_id = run_id
        self.task_id = task_id  # added to account_finished and run_finished, so consumers need no memory of runs
        self.scrub = scrub
        self.error: LogWriteError | None = None
        self.on_dead: Callable[[LogWriteError], None] | None = None
        self.count = 0
        self.started = False  # run_started is on disk
        self.finished = False  # run_finished is on disk: the run lock may go

    @property
    def dead(self) -> bool:
        return self.error is not None

    def emit(self, type_: str, **fields: Any) -> Event | None:
        """Append one event of this run; returns it, or None once the log could not be written."""
        if self.error is not None:
            return None
        fields = {k: v if k in STRUCTURAL else self.scrub.deep(v) for k, v in fields.items()}
        if self.task_id is not None and type_ in TASK_ID_TYPES:
            fields.setdefault("task_id", self.task_id)
        try:
            event = self.writer.emit(type_, run_id=self.run_id, **fields)
        except LogWriteError as exc:
            self.error = exc
            if self.on_dead is not None:
                self.on_dead(exc)
            return None
        self.count += 1
        if type_ == "run_started":
            self.started = True
        elif type_ == "run_finished":
            self.finished = True
        return event
