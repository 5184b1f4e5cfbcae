"""Steps: one ``[[steps]]`` table checked into a ``Step``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from warmup.errors import UsageError
from warmup.tasks.actions import ACTIONS, _check_action_values
from warmup.tasks.common import _check_ms, _describe, _get, _is, _type_name

COMMON_STEP_KEYS = {"timeout_ms": int, "optional": bool}


@dataclass(frozen=True)
class Step:
    """One step of a task: ``args`` keeps the values as written (references unresolved)."""

    index: int  # 0-based position in the task's steps
    action: str
    args: dict[str, Any]  # "" -> the main value, plus the action's extra fields
    timeout_ms: int
    optional: bool
    raw: dict[str, Any]  # the step table exactly as written, for the run's record

    @property
    def label(self) -> str:
        return f"step {self.index + 1} ({self.action})"



def _step_from_table(raw: Any, index: int, default_timeout_ms: int, task_where: str) -> Step:
    where = f"{task_where}: step {index + 1}"
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: must be a table with one action, not {_describe(raw)}")
    actions = [k for k in raw if k in ACTIONS]
    if not actions:
        others = [k for k in raw if k not in COMMON_STEP_KEYS]
        if others:
            raise UsageError(f"{where}: unknown action {others[0]!r} (actions: {', '.join(ACTIONS)})")
        raise UsageError(f"{where}: no action (one of: {', '.join(ACTIONS)})")
    if len(actions) > 1:
        raise UsageError(f"{where}: one action per step, found {' and '.join(actions)}")
    action = actions[0]
    spec = ACTIONS[action]
    where = f"{where} ({action})"
    allowed = {action, *spec.extras, *COMMON_STEP_KEYS}
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise UsageError(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")

    value = raw[action]
    if not _is(value, spec.value):
        raise UsageError(f"{where}: {action} must be {spec.what} ({_type_name(spec.value)}), not {_describe(value)}")
    args: dict[str, Any] = {"": value}
    for extra, (kinds, required) in spec.extras.items():
        if extra not in raw:
            if required:
                raise UsageError(f"{where}: missing field {extra!r}")
            continue
        if not _is(raw[extra], kinds):
            raise UsageError(f"{where}: {extra} must be {_type_name(kinds)}, not {_describe(raw[extra])}")
        args[extra] = raw[extra]
    timeout_ms = _check_ms(_get(raw, "timeout_ms", int, where, default=default_timeout_ms), "timeout_ms", where)
    optional = _get(raw, "optional", bool, where, default=False)

    _check_action_values(action, args, where)
    return Step(index, action, args, timeout_ms, optional, dict(raw))


def _templates(step: Step) -> list[str]:
    spec = ACTIONS[step.action]
    if step.action == "expect_text":
        return [step.args[""]["selector"], step.args[""]["text"]]
    return [step.args[k] for k in spec.templated if isinstance(step.args.get(k), str)]
