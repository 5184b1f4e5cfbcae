"""Steps: one ``[[steps]]`` table checked into a ``Step``, a group table into several.

Besides its action, any step may carry:

- ``when = { visible = SELECTOR }`` / ``when = { url = PATTERN }`` and ``unless = {...}`` (same
  shapes): the step runs only when ``when`` holds and ``unless`` does not (``Condition``);
- ``fail_if = SELECTOR``: the step fails at once when that element shows up while it runs;
- ``extract = { selector?, attribute?, as = NAME }``: after the action, a value read from the page
  (or an ``evaluate`` step's result) is recorded and usable in later steps as ``${page.NAME}``.
  A step may be ``extract`` alone (its action is then ``"extract"``).

A group, ``{ group = NAME, when/unless, steps = [...] }``, puts one condition over several steps.
Groups are flattened at load: ``Task.steps`` lists every step once, with a unique ``index`` in
task order, and each inner step points to its ``Group`` (one group level: a group inside a group
is refused).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from warmup.errors import UsageError
from warmup.tasks.actions import ACTIONS, _check_action_values
from warmup.tasks.common import VAR_NAME, _check_ms, _describe, _get, _is, _type_name, references
from warmup.tasks.urls import check_url_pattern

COMMON_STEP_KEYS = {"timeout_ms": int, "optional": bool, "when": dict, "unless": dict, "fail_if": str, "extract": dict}
GROUP_KEYS = ("group", "steps", "when", "unless")
CONDITION_KINDS = ("visible", "url")
EXTRACT_KEYS = ("selector", "attribute", "as")
EXTRACT_ONLY = "extract"  # the action of a step that only extracts a value
SAVE_STATE = "save_state"  # run by the engine itself (never by ``perform``)
VALUE_ACTION = "evaluate"  # the action whose result ``extract`` takes when it names no selector


@dataclass(frozen=True)
class Condition:
    """``{ visible = SELECTOR }`` (visible right now, never waited for) or ``{ url = PATTERN }``
    (``warmup.tasks.urls``: a glob resolved against the base URL, or ``re:``)."""

    kind: str  # one of CONDITION_KINDS
    value: str  # as written: may hold ${...} references

    def describe(self) -> str:
        return f"{self.kind} '{self.value}'"


@dataclass(frozen=True)
class Extract:
    """Where a step's value comes from: a selector's text (or ``attribute``), else the action's result."""

    name: str  # ``as``: the value is ``${page.<name>}`` in later steps
    selector: str | None = None
    attribute: str | None = None


@dataclass(frozen=True)
class Group:
    """Steps under one condition: ``Task.steps[first : first + count]``, checked once when it starts."""

    name: str
    first: int  # index of its first step
    count: int
    when: Condition | None
    unless: Condition | None
    raw: dict[str, Any]  # the group table exactly as written, for the run's record


@dataclass(frozen=True)
class Step:
    """One step of a task: ``args`` keeps the values as written (references unresolved)."""

    index: int  # 0-based position in the task's (flattened) steps: unique in a task
    action: str
    args: dict[str, Any]  # "" -> the main value, plus the action's extra fields
    timeout_ms: int
    optional: bool
    raw: dict[str, Any]  # the step table exactly as written, for the run's record
    when: Condition | None = None
    unless: Condition | None = None
    fail_if: str | None = None
    extract: Extract | None = None
    group: Group | None = None

    @property
    def label(self) -> str:
        where = f" in group '{self.group.name}'" if self.group is not None else ""
        return f"step {self.index + 1} ({self.action}){where}"


def _steps_from_list(raw_steps: list[Any], default_timeout_ms: int, task_where: str) -> list[Step]:
    """Every step of ``[[steps]]`` in order, groups flattened (see the module's docstring)."""
    steps: list[Step] = []
    for position, raw in enumerate(raw_steps):
        if isinstance(raw, dict) and "group" in raw:
            steps.extend(_group_from_table(raw, position, len(steps), default_timeout_ms, task_where))
        else:
            where = f"{task_where}: step {len(steps) + 1}"
            steps.append(_step_from_table(raw, len(steps), default_timeout_ms, where))
    return steps


def _group_from_table(raw: dict[str, Any], position: int, first: int, default_timeout_ms: int,
                      task_where: str) -> list[Step]:
    name = raw["group"]
    where = f"{task_where}: steps[{position}]"
    if not isinstance(name, str) or not name:
        raise UsageError(f"{where}: group must be a name (a non-empty string), not {_describe(name)}")
    where = f"{task_where}: group '{name}'"
    unknown = [k for k in raw if k not in GROUP_KEYS]
    if unknown:
        raise UsageError(
            f"{where}: unknown field {unknown[0]!r} (a group has {', '.join(GROUP_KEYS)}; "
            "put the other fields on its steps)"
        )
    inner = raw.get("steps")
    if not isinstance(inner, list) or not inner:
        got = "nothing" if inner is None else _describe(inner)
        raise UsageError(f"{where}: steps must be a non-empty list of steps, not {got}")
    group = Group(name, first, len(inner), _condition(raw, "when", where), _condition(raw, "unless", where),
                  dict(raw))
    steps = []
    for i, table in enumerate(inner):
        index = first + i
        at = f"{task_where}: step {index + 1}"
        if isinstance(table, dict) and "group" in table:
            raise UsageError(f"{at} in group '{name}': a group cannot hold another group "
                             "(give the inner steps their own when)")
        step = _step_from_table(table, index, default_timeout_ms, at, in_group=f" in group '{name}'")
        steps.append(replace(step, group=group))
    return steps


def _step_from_table(raw: Any, index: int, default_timeout_ms: int, where: str, *, in_group: str = "") -> Step:
    """One step; ``where`` names it in messages (``task file X: step 3``), followed by its action and
    ``in_group`` as ``Step.label`` has them: ``step 3 (click) in group 'login'``."""
    if not isinstance(raw, dict):
        raise UsageError(f"{where}{in_group}: must be a table with one action, not {_describe(raw)}")
    actions = [k for k in raw if k in ACTIONS]
    if not actions and EXTRACT_ONLY in raw:
        actions = [EXTRACT_ONLY]
    if not actions:
        others = [k for k in raw if k not in COMMON_STEP_KEYS]
        if others:
            raise UsageError(f"{where}{in_group}: unknown action {others[0]!r} (actions: {', '.join(ACTIONS)})")
        raise UsageError(f"{where}{in_group}: no action (one of: {', '.join(ACTIONS)})")
    if len(actions) > 1:
        raise UsageError(f"{where}{in_group}: one action per step, found {' and '.join(actions)}")
    action = actions[0]
    where = f"{where} ({action}){in_group}"
    for key, kinds in COMMON_STEP_KEYS.items():
        if key in raw and not _is(raw[key], kinds):
            raise UsageError(f"{where}: {key} must be {_type_name(kinds)}, not {_describe(raw[key])}")
    timeout_ms = _check_ms(_get(raw, "timeout_ms", int, where, default=default_timeout_ms), "timeout_ms", where)
    optional = _get(raw, "optional", bool, where, default=False)
    when, unless = _condition(raw, "when", where), _condition(raw, "unless", where)
    fail_if = _get(raw, "fail_if", str, where, default=None)
    if fail_if is not None and not fail_if:
        raise UsageError(f"{where}: fail_if must be a selector, not empty")
    extract = _extract(raw, action, where)

    if action == EXTRACT_ONLY:
        unknown = [k for k in raw if k not in COMMON_STEP_KEYS]
        if unknown:
            raise UsageError(f"{where}: unknown field {unknown[0]!r}")
        args: dict[str, Any] = {}
    else:
        spec = ACTIONS[action]
        allowed = {action, *spec.extras, *COMMON_STEP_KEYS}
        unknown = [k for k in raw if k not in allowed]
        if unknown:
            raise UsageError(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
        value = raw[action]
        if not _is(value, spec.value):
            raise UsageError(
                f"{where}: {action} must be {spec.what} ({_type_name(spec.value)}), not {_describe(value)}"
            )
        args = {"": value}
        for extra, (kinds, required) in spec.extras.items():
            if extra not in raw:
                if required:
                    raise UsageError(f"{where}: missing field {extra!r}")
                continue
            if not _is(raw[extra], kinds):
                raise UsageError(f"{where}: {extra} must be {_type_name(kinds)}, not {_describe(raw[extra])}")
            args[extra] = raw[extra]
        _check_action_values(action, args, where)
    return Step(index, action, args, timeout_ms, optional, dict(raw), when, unless, fail_if, extract)


def _condition(raw: dict[str, Any], key: str, where: str) -> Condition | None:
    """``when`` / ``unless``: a table with exactly one of ``visible`` and ``url``, a non-empty string."""
    if key not in raw:
        return None
    table = raw[key]
    shapes = f"{key} = {{ visible = \"SELECTOR\" }} or {key} = {{ url = \"PATTERN\" }}"
    if not isinstance(table, dict) or len(table) != 1:
        raise UsageError(f"{where}: {key} must be one condition: {shapes}")
    (kind, value), = table.items()
    if kind not in CONDITION_KINDS:
        raise UsageError(f"{where}: unknown condition {kind!r} in {key} (write {shapes})")
    if not isinstance(value, str) or not value:
        raise UsageError(f"{where}: {key}.{kind} must be a non-empty string, not {_describe(value)}")
    if kind == "url":
        check_url_pattern(value, f"{where}: {key}.url")
    return Condition(kind, value)


def _extract(raw: dict[str, Any], action: str, where: str) -> Extract | None:
    if "extract" not in raw:
        return None
    table = raw["extract"]
    where = f"{where}: extract"
    unknown = [k for k in table if k not in EXTRACT_KEYS]
    if unknown:
        raise UsageError(f"{where}: unknown field {unknown[0]!r} (use {', '.join(EXTRACT_KEYS)})")
    for key in EXTRACT_KEYS:
        if key in table and (not isinstance(table[key], str) or not table[key]):
            raise UsageError(f"{where}.{key} must be a non-empty string, not {_describe(table[key])}")
    name = table.get("as")
    if name is None:
        raise UsageError(f"{where}: missing 'as' (the name later steps use as ${{page.NAME}})")
    if not VAR_NAME.match(name):
        raise UsageError(f"{where}.as {name!r} is not a variable name (letters, digits and _)")
    selector, attribute = table.get("selector"), table.get("attribute")
    if selector is None and action != VALUE_ACTION:
        raise UsageError(f"{where}: missing 'selector' (only an {VALUE_ACTION} step's result can be extracted "
                         "without one)")
    if attribute is not None and selector is None:
        raise UsageError(f"{where}: attribute needs a selector")
    if attribute is not None and references(attribute):
        raise UsageError(f"{where}.attribute is a plain name, it cannot use ${{...}}")
    return Extract(name, selector, attribute)


def _templates(step: Step) -> list[str]:
    """Every string of ``step`` that may hold ``${...}`` references (checked at load for each account)."""
    found: list[str] = []
    if step.action == "expect_text":
        found += [step.args[""]["selector"], step.args[""]["text"]]
    elif step.action in ACTIONS:
        found += [step.args[k] for k in ACTIONS[step.action].templated if isinstance(step.args.get(k), str)]
    found += _option_templates(step)
    return found


def _option_templates(step: Step) -> list[str]:
    """The templated strings of a step's conditions, fail_if and extract selector (its group's too)."""
    conditions = [step.when, step.unless]
    if step.group is not None and step.index == step.group.first:
        conditions += [step.group.when, step.group.unless]
    found = [c.value for c in conditions if c is not None]
    if step.fail_if is not None:
        found.append(step.fail_if)
    if step.extract is not None and step.extract.selector is not None:
        found.append(step.extract.selector)
    return found


def step_selectors(step: Step) -> list[tuple[str, str]]:
    """Every selector of ``step`` as written, with what it is (for messages): its action's own
    (``ActionSpec.selectors``), its ``when``/``unless`` and its group's (on the group's first step)
    ``visible``, ``fail_if`` and ``extract.selector``."""
    found: list[tuple[str, str]] = []
    spec = ACTIONS.get(step.action)
    for path in spec.selectors if spec is not None else ():
        value: Any = step.args
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            found.append(("selector", value))
    conditions = [("when", step.when), ("unless", step.unless)]
    if step.group is not None and step.group.first == step.index:
        conditions += [(f"group '{step.group.name}' when", step.group.when),
                       (f"group '{step.group.name}' unless", step.group.unless)]
    for what, condition in conditions:
        if condition is not None and condition.kind == "visible":
            found.append((f"{what}.visible selector", condition.value))
    if step.fail_if:
        found.append(("fail_if selector", step.fail_if))
    if step.extract is not None and step.extract.selector:
        found.append(("extract.selector", step.extract.selector))
    return found
