"""The event envelope: what one line of the log is, and how a line becomes an event.

Every event is one JSON object on one line (UTF-8, written with orjson, which escapes every
control character inside strings, so an event can never span two lines). Every event carries:

- ``v``: the schema version of the event (int), see ``SCHEMA_VERSION`` and ``UPCASTERS``;
- ``id``: a unique string;
- ``type``: one of ``EVENT_TYPES``;
- ``ts``: when it happened, UTC, ISO-8601 with microseconds and ``Z``.

Run-scoped events also carry ``run_id``; account-scoped ones ``run_id`` and ``account_id``.
``docs/events.md`` documents every type and field.

Reading is strict about the envelope and each type's required fields, and tolerant of extra fields:
a later release may add optional fields without a version step. A change that renames or removes a
field bumps ``SCHEMA_VERSION`` and adds an upcaster from the old version, so old logs stay readable.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

SCHEMA_VERSION = 1

Event = dict[str, Any]

_NONE = type(None)
_NUMBER = (int, float)
_OPT_STR = (str, _NONE)

# type -> (scope, {required field: accepted python types}). Scope "run" needs run_id,
# "account" needs run_id and account_id.
EVENT_TYPES: dict[str, tuple[str, dict[str, type | tuple[type, ...]]]] = {
    "run_started": (
        "run",
        {
            "task_id": str,
            "task_name": str,
            "accounts": list,
            "steps": int,
            "concurrency": int,
            "host": str,
            "pid": int,
        },
    ),
    "account_started": ("account", {"attempt": int}),
    "step_finished": (
        "account",
        {"index": int, "action": str, "ok": bool, "duration_ms": _NUMBER, "error": _OPT_STR},
    ),
    "artifact_saved": ("account", {"path": str, "sha256": str, "bytes": int}),
    "account_finished": ("account", {"status": str, "error": _OPT_STR, "attempt": int}),
    "run_finished": ("run", {"status": str}),
}

ACCOUNT_FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED"})
RUN_FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "INTERRUPTED"})

# version -> function turning an event of that version into one of the next version.
# Empty while SCHEMA_VERSION is 1; see docs/events.md for how to add one.
UPCASTERS: dict[int, Callable[[Event], Event]] = {}


class InvalidEvent(ValueError):
    """A line that is not a valid event; the message says why, for ``rejected_events``."""


def utc_now() -> str:
    """The current instant in the log's format: ``2026-11-29T07:00:00.123456Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_event_id() -> str:
    return uuid.uuid4().hex


def new_run_id() -> str:
    """A run id that sorts by start time and is short enough to type: ``20261129T070000-1a2b3c``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def make_event(type_: str, *, ts: str | None = None, **fields: Any) -> Event:
    """Build an event of ``type_`` with a fresh envelope; raises InvalidEvent if a field is missing."""
    event: Event = {"v": SCHEMA_VERSION, "id": new_event_id(), "type": type_, "ts": ts or utc_now()}
    event.update(fields)
    validate(event)
    return event


def encode(event: Event) -> bytes:
    """One complete log line, newline included."""
    return orjson.dumps(event) + b"\n"


def _check_fields(event: Event, spec: dict[str, type | tuple[type, ...]], what: str) -> None:
    for name, kinds in spec.items():
        if name not in event:
            raise InvalidEvent(f"{what}: missing field {name!r}")
        if not isinstance(event[name], kinds):
            raise InvalidEvent(f"{what}: field {name!r} has the wrong type ({type(event[name]).__name__})")


_ENVELOPE = {"v": int, "id": str, "type": str, "ts": str}
_SCOPE_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "run": {"run_id": str},
    "account": {"run_id": str, "account_id": str},
}


def validate(event: Any) -> Event:
    """Check ``event`` against the envelope and its type, upcasting an older version first.

    Returns the event at ``SCHEMA_VERSION``; raises InvalidEvent with a one-line reason.
    """
    if not isinstance(event, dict):
        raise InvalidEvent(f"not a JSON object ({type(event).__name__})")
    _check_fields(event, _ENVELOPE, "envelope")
    version = event["v"]
    if version > SCHEMA_VERSION or version < 1:
        raise InvalidEvent(f"unknown schema version {version} (this warmup reads 1..{SCHEMA_VERSION})")
    while version < SCHEMA_VERSION:
        event = UPCASTERS[version](event)
        version = event["v"]
    spec = EVENT_TYPES.get(event["type"])
    if spec is None:
        raise InvalidEvent(f"unknown event type {event['type']!r}")
    scope, fields = spec
    _check_fields(event, _SCOPE_FIELDS[scope], event["type"])
    _check_fields(event, fields, event["type"])
    return event


def decode(line: bytes) -> Event:
    """Parse and validate one log line (without its newline); raises InvalidEvent."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not valid JSON: {exc}") from None
    return validate(obj)


def host_and_pid() -> tuple[str, int]:
    return os.uname().nodename, os.getpid()
