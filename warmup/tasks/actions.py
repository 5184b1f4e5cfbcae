"""The actions a step can take: the type of each one's value and fields, and their checks.

Invariants the rest of the code relies on:

- ``ACTIONS`` is the one list of actions (the loader, the docs' table and ``perform`` follow it);
- after ``_check_action_values``, the text checks' main value holds only templated strings:
  ``expect_title``'s is the text, ``expect_text``'s is ``{selector, text}``; their options
  (``ignore_case``, ``regex``, written inside the check's table) are moved to ``args`` as fields
  of their own, so rendering never meets a boolean;
- ``upload``'s ``files`` become a list of relative or absolute paths (``check_upload_files`` checks
  that each one exists, relative to the task file's folder);
- ``save_state`` is only ever ``true``: the engine does it, ``perform`` never sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warmup.errors import UsageError
from warmup.tasks.common import MAX_MS, REFERENCE, _describe, references
from warmup.tasks.urls import check_url_pattern

if TYPE_CHECKING:
    from collections.abc import Iterable

    from warmup.tasks.steps import Step


@dataclass(frozen=True)
class ActionSpec:
    """One action: the type of its main value, its other fields (name -> (type, required))."""

    value: type | tuple[type, ...]
    extras: dict[str, tuple[type | tuple[type, ...], bool]] = field(default_factory=dict)
    templated: tuple[str, ...] = ()  # which fields may hold ${...} references ("" is the main value)
    what: str = ""  # the main value in words, for messages and docs
    # which values are selectors: paths into the step's args ("" is the main value; ("", "selector")
    # is the main value's own selector field): the one list `warmup validate --browser` reads
    selectors: tuple[tuple[str, ...], ...] = ()


ACTIONS: dict[str, ActionSpec] = {
    "goto": ActionSpec(str, templated=("",), what="a URL"),
    "click": ActionSpec(str, templated=("",), what="a selector", selectors=(("",),)),
    "fill": ActionSpec(str, {"value": (str, True)}, templated=("", "value"), what="a selector", selectors=(("",),)),
    "select": ActionSpec(str, {"value": (str, False), "label": (str, False)}, templated=("", "value", "label"),
                         what="a selector", selectors=(("",),)),
    "check": ActionSpec(str, templated=("",), what="a selector", selectors=(("",),)),
    "uncheck": ActionSpec(str, templated=("",), what="a selector", selectors=(("",),)),
    "upload": ActionSpec(str, {"files": ((str, list), True)}, templated=("",), what="a selector", selectors=(("",),)),
    "press": ActionSpec(str, {"selector": (str, False)}, templated=("", "selector"), what="a key name",
                        selectors=(("selector",),)),
    "hover": ActionSpec(str, templated=("",), what="a selector", selectors=(("",),)),
    "scroll": ActionSpec(int, {"pause_ms": (int, False)}, what="how many times"),
    "wait_ms": ActionSpec(int, what="milliseconds"),
    "wait_for": ActionSpec(str, templated=("",), what="a selector", selectors=(("",),)),
    "wait_for_url": ActionSpec(str, templated=("",), what="a URL pattern"),
    "evaluate": ActionSpec(str, templated=("",), what="a JavaScript expression"),
    "expect_title": ActionSpec((str, dict), templated=("",), what="text the title contains, or { text, ... }"),
    "expect_text": ActionSpec(dict, templated=("selector", "text"), what="{ selector, text }",
                              selectors=(("", "selector"),)),
    "expect_url": ActionSpec(str, templated=("",), what="a URL pattern"),
    "screenshot": ActionSpec(str, templated=("",), what="a name"),
    "save_state": ActionSpec(bool, what="true"),
}

# Actions whose main value must not be empty (a selector, a URL, a key, an expression, a name).
_NOT_EMPTY = ("goto", "click", "fill", "select", "check", "uncheck", "upload", "hover", "wait_for", "press",
              "screenshot", "evaluate")
# The options of a text check, written inside its table; both default to false.
TEXT_OPTIONS = ("ignore_case", "regex")


def _check_action_values(action: str, args: dict[str, Any], where: str) -> None:
    """Check an action's values beyond their types; may normalise ``args`` (see the module's invariants)."""
    value = args[""]
    if action == "scroll":
        if value < 1:
            raise UsageError(f"{where}: scroll must be 1 or more times")
        pause_ms = args.get("pause_ms", 0)
        if not 0 <= pause_ms <= MAX_MS:
            raise UsageError(f"{where}: pause_ms must be from 0 to {MAX_MS}, not {pause_ms}")
    elif action == "wait_ms" and not 0 <= value <= MAX_MS:
        raise UsageError(f"{where}: wait_ms must be from 0 to {MAX_MS}, not {value}")
    elif action == "expect_text":
        _text_check(args, where, action, ("selector", "text"))
    elif action == "expect_title":
        if isinstance(value, str):
            args[""] = {"text": value}
        _text_check(args, where, action, ("text",))
        args[""] = args[""]["text"]
    elif action in ("expect_url", "wait_for_url"):
        check_url_pattern(value, f"{where}: {action}")
    elif action == "select":
        if "value" in args and "label" in args:
            raise UsageError(f"{where}: select takes value or label, not both")
        if "value" not in args and "label" not in args:
            raise UsageError(f"{where}: select needs value or label (the option to choose)")
    elif action == "upload":
        args["files"] = _upload_files(args["files"], where)
    elif action == "save_state" and value is not True:
        raise UsageError(f"{where}: save_state must be true (leave the step out to not save)")
    if action in _NOT_EMPTY and not value:
        raise UsageError(f"{where}: {action} must not be empty")
    if action == "screenshot":
        if any(ref.startswith("env.") for ref in references(value)):
            raise UsageError(f"{where}: a screenshot name cannot use ${{env.*}} (it would put a secret in a file name)")


def _text_check(args: dict[str, Any], where: str, action: str, needed: tuple[str, ...]) -> None:
    """``expect_text`` / ``expect_title`` as a table: its strings stay in ``args[""]``, its options move out."""
    table = args[""]
    allowed = (*needed, *TEXT_OPTIONS)
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise UsageError(f"{where}: unknown field {unknown[0]!r} in {action} (use {', '.join(allowed)})")
    for key in needed:
        if key not in table:
            raise UsageError(f"{where}: {action} needs {key!r}")
        if not isinstance(table[key], str):
            raise UsageError(f"{where}: {action}.{key} must be a string, not {_describe(table[key])}")
    for key in TEXT_OPTIONS:
        if key in table and not isinstance(table[key], bool):
            raise UsageError(f"{where}: {action}.{key} must be true or false, not {_describe(table[key])}")
    if "selector" in needed and not table["selector"]:
        raise UsageError(f"{where}: {action}.selector must not be empty")
    if table.get("regex"):
        try:
            re.compile(REFERENCE.sub("x", table["text"]))
        except re.error as exc:
            raise UsageError(f"{where}: {action}.text {table['text']!r} is not a valid regular expression "
                             f"({exc})") from None
    args[""] = {key: table[key] for key in needed}
    args.update({key: table[key] for key in TEXT_OPTIONS if table.get(key)})


def _upload_files(files: str | list[Any], where: str) -> list[str]:
    listed = [files] if isinstance(files, str) else files
    if not listed:
        raise UsageError(f"{where}: upload needs at least one file in files")
    for i, name in enumerate(listed):
        if not isinstance(name, str):
            raise UsageError(f"{where}: files[{i}] must be a string (a path), not {_describe(name)}")
        if not name:
            raise UsageError(f"{where}: a file name in files is empty")
        if references(name):
            raise UsageError(f"{where}: the file {name!r} cannot use ${{...}} (write paths relative to the task file)")
    return list(listed)


def check_upload_files(steps: Iterable[Step], base_dir: Path, where: str) -> None:
    """Every file an ``upload`` step names exists, relative to ``base_dir`` (the task file's folder)."""
    for step in steps:
        if step.action != "upload":
            continue
        for name in step.args["files"]:
            path = base_dir / name
            if path.is_dir():
                raise UsageError(f"{where}: {step.label}: {str(path)!r} is a folder, not a file to upload")
            if not path.is_file():
                raise UsageError(f"{where}: {step.label}: no file {str(path)!r} to upload")
