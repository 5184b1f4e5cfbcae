"""A run's timeline for its page: the report's (``warmup.report``), kept up to date cheaply.

The timeline needs each step's timing, which only the log holds, and finding a run's events in a
file log means reading the whole file (a second for ~170 MB). So:

- a **finished** run's timeline is rendered once and kept (it never changes again);
- a **live** run's timings are kept with the log position the scan stopped at, and each refresh
  reads only the lines appended since (``read_timings(resume=...)``): a page refreshing its live
  timeline every second costs the new bytes, not the log.

Both are bounded (``SIZE`` runs each, least recently asked dropped). Everything here blocks (log
and database reads): the server calls it in a thread. One lock per run makes two refreshes of the
same run take turns, so an event is never folded twice.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from warmup.errors import UsageError
from warmup.events.envelope import RUN_FINAL_STATUSES
from warmup.log import Log
from warmup.report.data import LogTimings, gather, read_timings
from warmup.report.render import timeline_html
from warmup.serve import queries

SIZE = 32
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class Fragment:
    """``html``: the timeline section (escaped by the report's renderer); ``note`` instead when the log
    cannot be read; ``position``: the tables' checkpoint its statuses come from; ``final``: the run
    has finished (its timeline will not change)."""

    html: str
    position: int | None
    final: bool
    note: str | None = None


class _Bounded(Generic[K, V]):
    """The last ``size`` items asked for or put (not thread-safe: ``Timelines`` holds its lock)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key: K, value: V) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


@dataclass
class _Live:
    """A live run's timings so far (None: read from the log's start), and the lock of its refreshes."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    timings: LogTimings | None = None


class Timelines:
    """The timelines of the runs asked for lately (thread-safe)."""

    def __init__(self, size: int = SIZE) -> None:
        self._lock = threading.Lock()
        self._finished: _Bounded[tuple[str, str], str] = _Bounded(size)
        self._live: _Bounded[tuple[str, str], _Live] = _Bounded(size)

    def fragment(self, db_path: Path, log: Log, artifacts: Path, run_id: str) -> Fragment | None:
        """The run's timeline now, or None when the tables do not know the run."""
        key = (f"{db_path}\0{log.name}", run_id)
        with self._lock:
            done = self._finished.get(key)
        if done is not None:
            return Fragment(done, queries.checkpoint_position(db_path), True)
        detail = queries.get_run(db_path, run_id)
        if detail is None:
            return None
        final = detail["run"]["status"] in RUN_FINAL_STATUSES
        with self._lock:
            live = self._live.get(key)
            if live is None:
                live = _Live()
                self._live.put(key, live)
        with live.lock:
            try:
                live.timings = read_timings(log, run_id, resume=live.timings)
                report = gather(run_id, db_path=db_path, log_path=log, artifacts_dir=artifacts, images=False,
                                timings=live.timings)
            except UsageError as exc:
                live.timings = None  # (a scan cut short: read again from the start next time)
                return Fragment("", detail["position"], final, str(exc))
            html = timeline_html(report, [])
        if final:
            with self._lock:
                self._finished.put(key, html)
                self._live.items.pop(key, None)
        return Fragment(html, detail["position"], final)


TIMELINES = Timelines()
