"""The actions a step can take: the type of each one's value and fields, and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from warmup.errors import UsageError
from warmup.tasks.common import MAX_MS, _describe, references


@dataclass(frozen=True)
class ActionSpec:
    """One action: the type of its main value, its other fields (name -> (type, required))."""

    value: type | tuple[type, ...]
    extras: dict[str, tuple[type, bool]] = field(default_factory=dict)
    templated: tuple[str, ...] = ()  # which fields may hold ${...} references ("" is the main value)
    what: str = ""  # the main value in words, for messages and docs


ACTIONS: dict[str, ActionSpec] = {
    "goto": ActionSpec(str, templated=("",), what="a URL"),
    "click": ActionSpec(str, templated=("",), what="a selector"),
    "fill": ActionSpec(str, {"value": (str, True)}, templated=("", "value"), what="a selector"),
    "press": ActionSpec(str, {"selector": (str, False)}, templated=("", "selector"), what="a key name"),
    "hover": ActionSpec(str, templated=("",), what="a selector"),
    "scroll": ActionSpec(int, {"pause_ms": (int, False)}, what="how many times"),
    "wait_ms": ActionSpec(int, what="milliseconds"),
    "wait_for": ActionSpec(str, templated=("",), what="a selector"),
    "expect_title": ActionSpec(str, templated=("",), what="text the title contains"),
    "expect_text": ActionSpec(dict, templated=("selector", "text"), what="{ selector, text }"),
    "screenshot": ActionSpec(str, templated=("",), what="a name"),
    "save_state": ActionSpec(bool, what="true"),
}



def _check_action_values(action: str, args: dict[str, Any], where: str) -> None:
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
        unknown = sorted(set(value) - {"selector", "text"})
        if unknown:
            raise UsageError(f"{where}: unknown field {unknown[0]!r} in expect_text (use selector and text)")
        for key in ("selector", "text"):
            if key not in value:
                raise UsageError(f"{where}: expect_text needs {key!r}")
            if not isinstance(value[key], str):
                raise UsageError(f"{where}: expect_text.{key} must be a string, not {_describe(value[key])}")
    elif action in ("goto", "click", "fill", "hover", "wait_for", "press", "screenshot") and not value:
        raise UsageError(f"{where}: {action} must not be empty")
    if action == "screenshot":
        if any(ref.startswith("env.") for ref in references(value)):
            raise UsageError(f"{where}: a screenshot name cannot use ${{env.*}} (it would put a secret in a file name)")
