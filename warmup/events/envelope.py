"""The event envelope: what one line of the log is, and how a line becomes an event.

Every event is one JSON object on one line (UTF-8, written with orjson, which escapes every
control character inside strings, so an event can never span two lines). Every event carries:

- ``v``: the schema version of the event (int), see ``SCHEMA_VERSION`` and ``UPCASTERS``;
- ``id``: a unique string;
- ``type``: one of ``EVENT_TYPES``;
- ``ts``: when it happened, UTC, ISO-8601 with microseconds and ``Z``.

Run-scoped events also carry ``run_id``; account-scoped ones ``run_id`` and ``account_id``.
``docs/events.md`` documents every type and field.

The schema lives in one place: the msgspec Structs below. They validate every event the writer
builds (``make_event``), every line ``decode`` reads, and, through ``EventDecoder``, the
projector's million-lines-a-second path, where msgspec parses and checks a line in C faster than
``orjson.loads`` alone builds a dict. Reading is strict about the envelope and each type's required
fields, and tolerant of extra fields: a later release may add optional fields without a version
step. A change that renames or removes a field bumps ``SCHEMA_VERSION`` and adds an upcaster from
the old version, so old logs stay readable.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union

import msgspec
import orjson

SCHEMA_VERSION = 1
# A line nested deeper than this (lists and objects) is invalid: far beyond any real event (a task
# record nests a few levels), well under msgspec's stack-bound limit (~1000 minus the caller's
# stack) and orjson's (1024 to read, 255 to write), so every reader can read, and write back, any
# line it accepts. Nesting deeper takes more than 2 * MAX_DEPTH bytes of brackets, so only lines
# longer than that are looked at (a quarter of a percent of a real log: most lines are 200-400 bytes).
MAX_DEPTH = 250
DEEP_BYTES = 2 * MAX_DEPTH


class InvalidEvent(ValueError):
    """A line that is not a valid event; the message says why, for ``rejected_events``."""


# -- the schema ------------------------------------------------------------------------------
# Every integer fits SQLite's (signed 64-bit): a larger one is a bad line, not a crash later.
Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# ``ts`` has the log's exact length here (a cheap check in C on every line); its full shape is
# checked by ``is_timestamp`` where a time is stored or compared (a regex on every line would cost
# the projector a third of its speed).
Timestamp = Annotated[str, msgspec.Meta(min_length=27, max_length=27)]
_fromisoformat = datetime.fromisoformat


def is_timestamp(ts: str) -> bool:
    """True for a real time in the log's format: ``2026-11-29T07:00:00.123456Z``.

    The fixed separators and ASCII pin the shape (``fromisoformat`` alone would also take a week
    date or a space for the ``T``); ``fromisoformat`` then checks every field's digits and range
    (no minute 99, no 30 February). Twice as fast as a regex plus that, on a projector hot path.
    """
    if not (
        len(ts) == 27 and ts.isascii()
        and ts[4] == "-" and ts[7] == "-" and ts[10] == "T" and ts[13] == ":" and ts[16] == ":"
        and ts[19] == "." and ts[26] == "Z"
    ):
        return False
    try:
        _fromisoformat(ts)
    except ValueError:
        return False
    return True


class EventBase(msgspec.Struct, tag_field="type", kw_only=True, gc=False):
    # gc=False: an event holds no reference cycles, so the garbage collector need not track the
    # million of them a replay creates (msgspec's option for exactly this).
    v: Literal[1]  # SCHEMA_VERSION: an older version fails here and is upcast by the slow path
    id: str
    ts: Timestamp


class RunEvent(EventBase):
    run_id: str


class AccountEvent(RunEvent):
    account_id: str


class RunStarted(RunEvent, tag="run_started"):
    task_id: str
    task_name: str
    accounts: list[str]
    steps: Int
    concurrency: Int
    host: str
    pid: Int
    task: dict[str, Any] | None = None  # the task definition, secrets unresolved
    resumed_from: str | None = None
    workers: bool = False  # ``run --workers``: its accounts are handed out to ``warmup worker`` processes
    trigger: str | None = None  # cli | schedule | api | dashboard (warmup.runs.origin); absent before issue 13
    scheduled_for: Timestamp | None = None  # a schedule's firing: the due time it was started for


class AccountStarted(AccountEvent, tag="account_started"):
    attempt: Int
    worker: str | None = None  # "host pid" of the ``warmup worker`` driving it (``run --workers``)


class StepFinished(AccountEvent, tag="step_finished"):
    index: Int
    action: str
    ok: bool
    duration_ms: float
    error: str | None
    attempt: Int | None = None
    optional: bool = False
    url: str | None = None
    skipped: bool = False  # its condition said no: ok is true, and it counts as neither ok nor failed
    extracted: dict[str, str] | None = None  # {name: value} read from the page (``extract``)
    name: str | None = None  # a Python-scripted step's name (action "script")


class ArtifactSaved(AccountEvent, tag="artifact_saved"):
    path: str
    sha256: str
    bytes: Int
    kind: str | None = None
    attempt: Int | None = None


class AccountFinished(AccountEvent, tag="account_finished"):
    status: str
    error: str | None
    attempt: Int
    retrying: bool = False
    task_id: str | None = None  # the run's task (optional: older logs lack it)
    trace_dropped: str | None = None  # why the attempt's Playwright trace was not kept (issue 11)


class RunFinished(RunEvent, tag="run_finished"):
    status: str
    reason: str | None = None
    task_id: str | None = None  # the run's task (optional: older logs lack it)


assert EventBase.__annotations__["v"] == f"Literal[{SCHEMA_VERSION}]", "bump v's Literal with SCHEMA_VERSION"

EVENT_CLASSES: tuple[type[EventBase], ...] = (
    RunStarted,
    AccountStarted,
    StepFinished,
    ArtifactSaved,
    AccountFinished,
    RunFinished,
)
EVENT_TYPES: dict[str, type[EventBase]] = {cls.__struct_config__.tag: cls for cls in EVENT_CLASSES}  # type: ignore[misc]
AnyEvent = Union[RunStarted, AccountStarted, StepFinished, ArtifactSaved, AccountFinished, RunFinished]  # noqa: UP007

ACCOUNT_FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED"})
RUN_FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "INTERRUPTED"})

Event = dict[str, Any]

# version -> function turning an event (a dict) of that version into one of the next version.
# Empty while SCHEMA_VERSION is 1; docs/events.md says how to add one.
UPCASTERS: dict[int, Callable[[Event], Event]] = {}


# How much longer than its run so far a step may say it took: a step's duration comes from a
# monotonic clock, its ``ts`` and its run's from the wall clock, which may be stepped meanwhile.
DURATION_SLACK_MS = 3_600_000.0


def duration_problem(duration_ms: float, ts: str, run_started: str | None) -> str | None:
    """Why a step's ``duration_ms`` cannot be true, or None: the rule the projector and the report share.

    A step ends at its ``ts`` and began after its run's ``run_started``: so its duration is at least
    0 and at most the time from the run's start to its end, plus ``DURATION_SLACK_MS``. The rule
    depends on the two events only (not on the clock, not on batching). Up to the slack nothing is
    parsed: the common case costs one comparison.
    """
    if 0.0 <= duration_ms <= DURATION_SLACK_MS:
        return None
    if not duration_ms >= 0.0:
        return f"duration_ms {duration_ms!r} is negative"
    if run_started is None:
        return f"duration_ms {duration_ms:.0f} is over an hour and the run's start is unknown"
    try:
        span_ms = (_fromisoformat(ts) - _fromisoformat(run_started)).total_seconds() * 1000
    except ValueError:
        return f"duration_ms {duration_ms:.0f} is over an hour and ts is not a time"
    if duration_ms > max(span_ms, 0.0) + DURATION_SLACK_MS:
        return (f"duration_ms {duration_ms:.0f} is longer than its run so far "
                f"({max(span_ms, 0.0):.0f} ms since run_started) plus an hour")
    return None


# -- building --------------------------------------------------------------------------------
def utc_now() -> str:
    """The current instant in the log's format: ``2026-11-29T07:00:00.123456Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_event_id() -> str:
    return uuid.uuid4().hex


def new_run_id() -> str:
    """A run id that sorts by start time and is short enough to type: ``20261129T070000-1a2b3c``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def make_event(type_: str, *, ts: str | None = None, **fields: Any) -> Event:
    """Build an event of ``type_`` with a fresh envelope; raises InvalidEvent if a field is wrong."""
    if ts is not None and not is_timestamp(ts):
        raise InvalidEvent(f"ts {ts!r} is not a time like 2026-11-29T07:00:00.123456Z")
    event: Event = {"v": SCHEMA_VERSION, "id": new_event_id(), "type": type_, "ts": ts or utc_now()}
    event.update(fields)
    validate(event)
    return event


def encode(event: Event) -> bytes:
    """One complete log line, newline included."""
    return orjson.dumps(event) + b"\n"


def host_and_pid() -> tuple[str, int]:
    return os.uname().nodename, os.getpid()


# -- reading ---------------------------------------------------------------------------------
def _upcast(obj: Any) -> Event:
    if not isinstance(obj, dict):
        raise InvalidEvent(f"not a JSON object ({type(obj).__name__})")
    version = obj.get("v")
    if type(version) is not int:
        raise InvalidEvent("envelope: missing or non-integer field 'v'")
    if version > SCHEMA_VERSION or version < 1:
        raise InvalidEvent(f"unknown schema version {version} (this warmup reads 1..{SCHEMA_VERSION})")
    while version < SCHEMA_VERSION:
        obj = UPCASTERS[version](obj)
        version = obj["v"]
    return obj


def _reason(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    if text.startswith("Invalid value") and "$.type" in text:
        return f"unknown event type ({text})"
    return text


def _convert(obj: Any) -> AnyEvent:
    """An upcast event as its Struct, or InvalidEvent saying what is wrong (its depth already bounded)."""
    try:
        return msgspec.convert(obj, AnyEvent, strict=True)  # type: ignore[arg-type]
    except msgspec.ValidationError as exc:
        raise InvalidEvent(_reason(exc)) from None


def _check_depth(obj: Any) -> None:
    if nesting_depth(obj) > MAX_DEPTH:
        raise InvalidEvent(f"not valid JSON: nested deeper than {MAX_DEPTH} levels")


def to_struct(obj: Any) -> AnyEvent:
    """Validate a parsed event (upcasting an old version) and return it as its Struct."""
    obj = _upcast(obj)
    _check_depth(obj)  # (an object parsed anywhere: the same bound as a line, ``_parse_json``)
    return _convert(obj)


def validate(obj: Any) -> Event:
    """Check a parsed event against the schema; return it (as a dict) at ``SCHEMA_VERSION``."""
    obj = _upcast(obj)
    _check_depth(obj)
    _convert(obj)
    return obj


def _utf8_problem(line: bytes) -> str | None:
    try:
        line.decode()
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8: byte {exc.start} of the line ({exc.reason})"
    return None


def nesting_depth(obj: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``obj`` nests lists and dicts (a scalar is 0); level by level, without recursion,
    and no further than ``limit + 1``."""
    depth = 0
    level = [obj]
    while depth <= limit:
        containers = [x for x in level if isinstance(x, (dict, list))]
        if not containers:
            return depth
        depth += 1
        level = [v for x in containers for v in (x.values() if isinstance(x, dict) else x)]
    return depth


def _parse_json(line: bytes) -> Any:
    """Parse one line; raise InvalidEvent for anything that is not JSON within ``MAX_DEPTH`` levels.

    orjson refuses invalid UTF-8 (anywhere in the line) and nesting beyond 1024 levels; the depth
    check brings that down to ``MAX_DEPTH``, the same bound every reader applies (see ``check_line``).
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        problem = _utf8_problem(line)
        raise InvalidEvent(problem or f"not valid JSON: {exc}") from None
    except RecursionError:  # (not raised by orjson today; a reader must never crash on a line)
        raise InvalidEvent(f"not valid JSON: nested deeper than {MAX_DEPTH} levels") from None
    if len(line) > DEEP_BYTES:  # (a shorter line cannot nest deeper than MAX_DEPTH)
        _check_depth(obj)
    return obj


def check_line(line: bytes) -> None:
    """Raise InvalidEvent if a line the fast decoder accepted is not a valid line all the same.

    msgspec skips an unknown field without looking into it: its bytes may be invalid UTF-8, and it
    may nest as deeply as the Python stack allows (past that, msgspec raises RecursionError at a
    depth that depends on the caller's stack). Both are refused here, whatever the field, so that
    every reader (projector, report, recover, tail through ``validate``) takes the same decision
    for the same line, at any stack depth. A line of ASCII no longer than ``DEEP_BYTES`` can be
    neither, and returns at once (the projector's hot loop makes that test inline before calling).
    """
    if len(line) <= DEEP_BYTES and line.isascii():
        return
    problem = _utf8_problem(line) if not line.isascii() else None
    if problem is not None:
        raise InvalidEvent(problem)
    if len(line) > DEEP_BYTES and line.count(b"[") + line.count(b"{") > MAX_DEPTH:
        _parse_json(line)  # (counts the real depth, brackets inside strings aside)


def decode(line: bytes) -> Event:
    """Parse and validate one log line (without its newline) as a dict; raises InvalidEvent."""
    obj = _upcast(_parse_json(line))  # (its depth bounded there)
    _convert(obj)
    return obj


class EventDecoder:
    """Decodes lines straight into Structs: the fast path for bulk readers such as the projector.

    A line of the current version is parsed and validated by msgspec in one C call. Anything else
    (an older version, or an invalid line) takes the slow path, which upcasts or says what is wrong.

    Invariant: every failure of a line, whatever it is, ends as ``InvalidEvent``, never as another
    exception: msgspec's ``RecursionError`` (deep nesting) and ``UnicodeDecodeError`` (which some
    msgspec versions raise for invalid UTF-8) are among ``FAST_FAILURES``, and the slow path then
    decides with fixed bounds (``MAX_DEPTH``, strict UTF-8), so the decision never depends on the
    caller's stack. A line the fast path accepts is checked by ``check_line``, which looks into a
    line that could hide invalid UTF-8 or deep nesting in a field msgspec skipped.
    """

    def __init__(self) -> None:
        # Callers in a hot loop may call ``fast`` themselves, then ``check_line``, and fall back to
        # ``slow`` on ``FAST_FAILURES``: all ``__call__`` does.
        self.fast: Callable[[bytes], AnyEvent] = msgspec.json.Decoder(AnyEvent).decode

    FAST_FAILURES = (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError)

    def __call__(self, line: bytes) -> AnyEvent:
        try:
            event = self.fast(line)  # (the current version only: ``v`` is a Literal)
        except self.FAST_FAILURES:
            return self.slow(line)
        check_line(line)
        return event

    @staticmethod
    def slow(line: bytes) -> AnyEvent:
        """Upcast an older version, or raise InvalidEvent saying what is wrong with the line."""
        return _convert(_upcast(_parse_json(line)))  # (its depth bounded by _parse_json)
