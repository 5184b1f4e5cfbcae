"""Gather what a run report shows: the run's rows from the database and its timings from the log.

The database (opened read only) gives the run, its accounts in run order and its artifacts. The log
gives what the tables do not keep: every step's outcome and duration, and each attempt's start and
end. A step's end is its ``step_finished.ts``; its start is that end minus ``duration_ms``.

Reading the log is a scan of the whole file, so lines that do not contain the run id's bytes are
skipped before they are decoded; lines that do not decode are counted and skipped, and so are steps
whose duration cannot be true (``envelope.duration_problem``, the projector's rule: negative, or
longer than the run so far plus an hour), so no event value can stretch the timeline without bound.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from warmup.errors import UsageError
from warmup.events.envelope import (
    AccountFinished,
    AccountStarted,
    EventDecoder,
    InvalidEvent,
    RunFinished,
    RunStarted,
    StepFinished,
    duration_problem,
)
from warmup.log import Log, as_log
from warmup.status import connect_readonly

READ_BYTES = 4 << 20  # complete lines read from the log at a time
IMAGE_KINDS = ("failure", "screenshot")  # the artifacts a report inlines
TRACE = "trace"  # a Playwright trace of an attempt (``trace-<attempt>.zip``): linked, never inlined
THUMBNAIL = "thumbnail"  # a failure screenshot at half scale: inlined in its place when there is one


def parse_ts(ts: str) -> float:
    """A log timestamp (``2026-11-29T07:00:00.123456Z``) as seconds since the epoch."""
    return datetime.fromisoformat(ts).timestamp()


@dataclass
class Step:
    account_id: str
    index: int
    action: str
    ok: bool
    optional: bool
    duration_ms: float
    end: float
    attempt: int
    error: str | None
    url: str | None
    skipped: bool = False  # its condition said no (ok is true): neither ok nor failed
    name: str | None = None  # a Python-scripted step's name

    @property
    def what(self) -> str:
        """The step's action, and a scripted step's name: ``click`` or ``script 'open feed'``."""
        return f"{self.action} '{self.name}'" if self.name else self.action

    @property
    def start(self) -> float:
        return self.end - self.duration_ms / 1000

    @property
    def outcome(self) -> str:
        """``ok``, ``skipped`` (a condition said no), ``failed``, or ``optional`` (an optional step that
        failed without failing the account)."""
        if self.skipped:
            return "skipped"
        if self.ok:
            return "ok"
        return "optional" if self.optional else "failed"


@dataclass
class Attempt:
    number: int
    start: float
    end: float | None = None
    status: str | None = None
    retrying: bool = False
    error: str | None = None


@dataclass
class Shot:
    """A screenshot of the run, with its bytes as a ``data:`` URI, or a note saying why there are none."""

    account_id: str
    path: str
    kind: str
    attempt: int | None
    ts: str | None
    data_uri: str | None = None
    note: str | None = None
    digest: str | None = None  # sha256 of the bytes read: identical images are inlined once
    thumbnail: bool = False  # the inlined bytes are the half-scale thumbnail of ``path``


@dataclass
class TraceFile:
    """A Playwright trace of the run: where it is (an absolute path, to open it), or a note saying why not."""

    account_id: str
    path: str  # as recorded: relative to the artifacts folder
    attempt: int | None
    file: Path | None = None  # the file, resolved, when it is inside the artifacts folder
    note: str | None = None


def load_trace(artifacts_dir: Path, row: dict[str, Any]) -> TraceFile:
    """The trace of an ``artifacts`` row: its file if it is there (its bytes are not read)."""
    trace = TraceFile(row["account_id"], row["path"], row.get("attempt"))
    root = artifacts_dir.resolve()
    path = (root / row["path"]).resolve()
    if not path.is_relative_to(root):
        trace.note = "not linked: its path leads outside the artifacts folder"
    elif not path.is_file():
        trace.note = f"missing: no file {path}"
    else:
        trace.file = path
    return trace


@dataclass
class Lane:
    """One account of the run: its row in ``run_accounts`` and what the log says it did."""

    account_id: str
    position: int
    status: str | None
    attempts_count: int
    error: str | None
    steps: list[Step] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status == "FAILED"


@dataclass
class Failure:
    """One failed attempt of an account: its error, the step that failed, and the screenshot taken."""

    account_id: str
    attempt: int
    final: bool  # False when the account was tried again afterwards
    error: str | None
    step: Step | None
    shot: Shot | None
    trace: TraceFile | None = None


@dataclass
class RunReport:
    run: dict[str, Any]
    lanes: list[Lane]
    shots: list[Shot]
    t0: float  # the timeline's first and last instants (epoch seconds)
    t1: float
    events_read: int = 0
    lines_skipped: int = 0  # lines mentioning the run that did not decode
    traces: list[TraceFile] = field(default_factory=list)

    def steps(self) -> list[Step]:
        return [s for lane in self.lanes for s in lane.steps]

    def failures(self) -> list[Failure]:
        by_key = {(s.account_id, s.attempt): s for s in self.shots if s.kind == "failure"}
        traces = {(t.account_id, t.attempt): t for t in self.traces}
        out: list[Failure] = []
        for lane in self.lanes:
            for att in lane.attempts:
                if att.status != "FAILED":
                    continue
                failed = [s for s in lane.steps if s.attempt == att.number and s.outcome == "failed"]
                out.append(Failure(
                    lane.account_id, att.number, not att.retrying, att.error,
                    failed[-1] if failed else None, by_key.get((lane.account_id, att.number)),
                    traces.get((lane.account_id, att.number)),
                ))
            if lane.failed and not any(f.account_id == lane.account_id for f in out):
                # failed per the tables but no failed attempt in the log (e.g. a log cut short)
                out.append(Failure(lane.account_id, lane.attempts_count, True, lane.error, None, None))
        return out


# -- the database ----------------------------------------------------------------------------
def load_rows(db_path: Path, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The run's row, its ``run_accounts`` rows in run order, and its artifacts' rows."""
    conn = connect_readonly(db_path)
    try:
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise UsageError(f"run {run_id} is in the log but not in {db_path} yet: run `warmup project`")
        accounts = [dict(r) for r in conn.execute(
            "SELECT * FROM run_accounts WHERE run_id = ? ORDER BY position, account_id", (run_id,)
        )]
        artifacts = [dict(r) for r in conn.execute(
            "SELECT * FROM artifacts WHERE run_id = ? ORDER BY ts, path", (run_id,)
        )]
    finally:
        conn.close()
    return dict(row), accounts, artifacts


# -- the log ---------------------------------------------------------------------------------
@dataclass
class LogTimings:
    steps: dict[str, list[Step]] = field(default_factory=dict)
    attempts: dict[str, list[Attempt]] = field(default_factory=dict)
    first: float | None = None
    last: float | None = None
    run_started: float | None = None
    run_started_ts: str | None = None  # (as logged: the reference of the duration rule)
    run_finished: float | None = None
    events: int = 0
    skipped: int = 0
    position: int | None = None  # where the scan stopped (a log position): a resumed scan goes on from there
    current: dict[str, int] = field(default_factory=dict)  # account -> its latest attempt so far


def read_timings(log: Log | str | os.PathLike[str], run_id: str, *, resume: LogTimings | None = None) -> LogTimings:
    """Every step and attempt of ``run_id`` in the log, per account, in log order.

    With ``resume`` (what this function returned for the same run and log), only the lines after
    where that scan stopped are read, and folded into ``resume`` itself: a live run's timeline is
    brought up to date without reading the log again.

    ``UsageError`` (exit 2) when there is no log, or it is not one (a FIFO, a folder).
    """
    log = as_log(log).narrowed(run_id=run_id)
    needle = orjson.dumps(run_id)  # the id as it appears in a line, quotes included
    decode = EventDecoder()
    out = resume if resume is not None else LogTimings()
    current = out.current  # account -> its latest attempt, for steps that do not say theirs
    with log.reader() as reader:
        position = log.START if out.position is None else out.position
        while (batch := reader.read(position, READ_BYTES)).lines:
            position = batch.end
            for line in batch.lines:
                if needle not in line:
                    continue
                try:
                    event = decode(line)
                except InvalidEvent:
                    out.skipped += 1
                    continue
                if getattr(event, "run_id", None) != run_id:
                    continue
                try:
                    _fold(out, current, event)  # (parses ts first, before it changes anything)
                except ValueError:  # a time that is not one (the projector stores no such time)
                    out.skipped += 1
        out.position = position
    return out


def _fold(out: LogTimings, current: dict[str, int], event: Any) -> None:
    ts = parse_ts(event.ts)
    if isinstance(event, StepFinished) and duration_problem(event.duration_ms, event.ts, out.run_started_ts):
        raise ValueError("a duration that cannot be true")  # (counted as skipped)
    out.events += 1
    out.first = ts if out.first is None else min(out.first, ts)
    out.last = ts if out.last is None else max(out.last, ts)
    if isinstance(event, StepFinished):
        attempt = event.attempt if event.attempt is not None else current.get(event.account_id, 1)
        out.steps.setdefault(event.account_id, []).append(Step(
            event.account_id, event.index, event.action, event.ok, event.optional, event.duration_ms, ts,
            attempt, event.error, event.url, event.skipped, event.name,
        ))
        out.first = min(out.first, ts - event.duration_ms / 1000)
    elif isinstance(event, AccountStarted):
        current[event.account_id] = event.attempt
        out.attempts.setdefault(event.account_id, []).append(Attempt(event.attempt, ts))
    elif isinstance(event, AccountFinished):
        attempts = out.attempts.setdefault(event.account_id, [])
        match = next((a for a in reversed(attempts) if a.number == event.attempt and a.end is None), None)
        if match is None:  # finished without a start in the log (cancelled before it began)
            match = Attempt(event.attempt, ts)
            attempts.append(match)
        match.end, match.status, match.retrying, match.error = ts, event.status, event.retrying, event.error
    elif isinstance(event, RunStarted):
        out.run_started, out.run_started_ts = ts, event.ts
    elif isinstance(event, RunFinished):
        out.run_finished = ts


# -- screenshots -----------------------------------------------------------------------------
def _mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


def load_shot(artifacts_dir: Path, row: dict[str, Any], thumbnail: dict[str, Any] | None = None) -> Shot:
    """The screenshot of an ``artifacts`` row, inlined; a missing or odd file gives a note instead.

    With a ``thumbnail`` row (a failure's half-scale copy) the thumbnail is inlined in its place, if
    it can be read: the report stays light, and names the full-size file.
    """
    if thumbnail is not None:
        small = load_shot(artifacts_dir, thumbnail)
        if small.data_uri is not None:
            small.path, small.kind, small.thumbnail = row["path"], row["kind"] or "", True
            return small
    shot = Shot(row["account_id"], row["path"], row["kind"] or "", row.get("attempt"), row.get("ts"))
    root = artifacts_dir.resolve()
    path = (root / row["path"]).resolve()
    if not path.is_relative_to(root):
        shot.note = "not read: its path leads outside the artifacts folder"
        return shot
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        shot.note = f"missing: no file {path}"
        return shot
    except OSError as exc:
        shot.note = f"unreadable: {os.strerror(exc.errno or 0) if exc.errno else exc}"
        return shot
    mime = _mime(data)
    if mime is None:
        shot.note = "not shown: not a PNG or JPEG file"
        return shot
    shot.digest = hashlib.sha256(data).hexdigest()
    if row.get("sha256") and shot.digest != row["sha256"]:
        shot.note = "the file has changed since the run saved it (its sha256 differs)"
    shot.data_uri = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
    return shot


# -- all together ----------------------------------------------------------------------------
def gather(run_id: str, *, db_path: Path, log_path: Log | Path, artifacts_dir: Path, images: bool = True,
           timings: LogTimings | None = None) -> RunReport:
    """The report of ``run_id``; ``images=False`` reads no screenshot (the timeline needs none).

    ``timings`` (from ``read_timings``, left unchanged) spares reading the log."""
    run, account_rows, artifact_rows = load_rows(db_path, run_id)
    timings = read_timings(log_path, run_id) if timings is None else copy.deepcopy(timings)
    lanes = [
        Lane(
            r["account_id"], r["position"], r["status"], r["attempts"] or 0, r["error"],
            timings.steps.get(r["account_id"], []), timings.attempts.get(r["account_id"], []),
        )
        for r in account_rows
    ]
    known = {lane.account_id for lane in lanes}
    extra = sorted((set(timings.steps) | set(timings.attempts)) - known)  # in the log, not (yet) in the DB
    for i, account_id in enumerate(extra):
        lanes.append(Lane(account_id, len(account_rows) + i, None, 0, None,
                          timings.steps.get(account_id, []), timings.attempts.get(account_id, [])))
    thumbnails = {(r["account_id"], r.get("attempt")): r for r in artifact_rows if r["kind"] == THUMBNAIL}
    shots = [
        load_shot(artifacts_dir, r, thumbnails.get((r["account_id"], r.get("attempt"))) if r["kind"] == "failure"
                  else None)
        for r in artifact_rows
        if images and r["kind"] in IMAGE_KINDS
    ]
    traces = [load_trace(artifacts_dir, r) for r in artifact_rows if r["kind"] == TRACE]

    instants = [t for t in (timings.first, timings.last, timings.run_started, timings.run_finished) if t is not None]
    for key in ("started_at", "completed_at"):
        if run.get(key):
            instants.append(parse_ts(run[key]))
    t0 = min(instants) if instants else 0.0
    t1 = max(instants) if instants else 0.0
    # an attempt still open (an interrupted run) ends where the timeline does
    for lane in lanes:
        for att in lane.attempts:
            if att.end is None:
                att.end = t1
    return RunReport(run, lanes, shots, t0, max(t1, t0 + 0.001), timings.events, timings.skipped, traces)
