"""``warmup validate TASK``: every problem a run would refuse before a browser starts, one line each.

A run stops at the task's first problem (``load_task``). To name more of them, a task that fails
is checked again in parts, each by the loader itself (never a second copy of its rules):

1. each ``[[steps]]`` table on its own (fields, types, actions);
2. the task without its steps (one stand-in step, ``FILLER``): accounts, fields, ``[vars]``... A
   problem here ends the check (the references need the accounts);
3. the task with its bad steps replaced by ``FILLER`` (which keeps every step's number): while the
   loader refuses it, the first step it refuses is found by bisection over the steps' prefixes
   (a step's checks look only at it and the steps before it: references for each account, a
   screenshot name an earlier step took...), reported and replaced, and the task tried again.
   So P problems in N steps cost about P * log2(N) loads, not N.

The loader's first problem is always among those reported. With ``--browser`` the selectors of
the steps that are fine (``steps.step_selectors``: the actions' ``ActionSpec.selectors`` and the
steps' conditions, ``fail_if`` and ``extract``) are rendered
for every account and each distinct one is asked for in headless Chromium on ``about:blank``:
Playwright refuses a selector it cannot parse there. Its message passes the task's scrubber, and
the selector is shown as written (``${env.*}`` unresolved), so no secret is printed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warmup.errors import UsageError, WarmupError
from warmup.tasks.common import DEFAULT_STEP_TIMEOUT_MS
from warmup.tasks.loader import _build_task, load_task
from warmup.tasks.model import Task
from warmup.tasks.steps import _group_from_table, _step_from_table, step_selectors

# A step valid in any task that refers to nothing: stands in for a bad step, or for all of them.
FILLER: dict[str, Any] = {"wait_ms": 0}


@dataclass
class Checked:
    """What ``check_task`` found: the task (None when not even its accounts load), and the problems.

    When there are problems, ``task`` holds the steps that were fine and ``FILLER`` in place of the
    others, whose indexes are ``bad_steps``: what a ``--browser`` check may still look at.
    """

    task: Task | None
    problems: list[str] = field(default_factory=list)
    bad_steps: set[int] = field(default_factory=set)


def check_task(path: Path, env: Mapping[str, str] | None = None) -> Checked:
    """Every problem of the task file ``path`` found before a browser, each a one-line message."""
    env = os.environ if env is None else env
    try:
        return Checked(load_task(path, env=env))
    except UsageError as exc:
        first = str(exc)
    checked = _check_in_parts(path, env)
    if first not in checked.problems:
        checked.problems.insert(0, first)
    return checked


def _check_in_parts(path: Path, env: Mapping[str, str]) -> Checked:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return Checked(None)  # load_task's own message says why
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps:
        return Checked(None)
    found: dict[int, str] = {}  # step index -> its problem
    timeout_ms = doc.get("timeout_ms") if isinstance(doc.get("timeout_ms"), int) else DEFAULT_STEP_TIMEOUT_MS
    count = 0  # steps before this table, groups flattened: how the loader numbers them
    spans: dict[int, range] = {}  # table -> the (flattened) indexes of its steps
    for i, raw in enumerate(steps):  # each table on its own: fields, types, actions
        group = isinstance(raw, dict) and "group" in raw
        try:
            if group:
                _group_from_table(raw, i, count, timeout_ms, f"task file {path}")
            else:
                _step_from_table(raw, count, timeout_ms, f"task file {path}: step {count + 1}")
        except UsageError as exc:
            found[i] = str(exc)
        size = len(raw["steps"]) if group and isinstance(raw.get("steps"), list) and raw["steps"] else 1
        spans[i] = range(count, count + size)
        count += size

    def stand_in(i: int) -> Any:
        """What replaces bad table ``i``: as many FILLER steps as it had, so later steps keep their numbers."""
        size = len(spans[i])
        return FILLER if size == 1 and "group" not in steps[i] else {"group": "_", "steps": [FILLER] * size}

    def bad_steps() -> set[int]:
        return {index for i in found for index in spans[i]}
    try:
        _build_task({**doc, "steps": [FILLER]}, path, env)
    except UsageError as exc:  # outside the steps: the references cannot be checked without it
        return Checked(None, [str(exc), *(found[i] for i in sorted(found))], bad_steps())
    kept = [stand_in(i) if i in found else raw for i, raw in enumerate(steps)]
    task: Task | None = None
    passing = 0  # the first `passing` steps of `kept` are known to load
    while task is None:
        try:
            task = _build_task({**doc, "steps": kept}, path, env)
        except UsageError:
            bad, message = _first_bad_step(doc, kept, path, env, passing)
            passing = bad + 1
            if bad in found:  # replacing it changed nothing: not a step's own problem
                return Checked(None, [found[i] for i in sorted(found)] + [message], bad_steps())
            found[bad] = message
            kept[bad] = stand_in(bad)
    return Checked(task, [found[i] for i in sorted(found)], bad_steps())


def _first_bad_step(
    doc: dict[str, Any], steps: list[Any], path: Path, env: Mapping[str, str], passing: int
) -> tuple[int, str]:
    """The first step whose task (it and the steps before it) the loader refuses, and why.

    Called when ``steps`` as a whole are refused and their first ``passing`` steps are not (nor
    ``[FILLER]``). A step's checks look at it and the steps before it only, so the steps before
    the first bad one pass: a bisection over the prefixes finds it in log2(len(steps)) loads.
    """
    lo, hi = max(1, passing + 1), len(steps)  # the first lo - 1 steps pass; all hi of them are refused
    message = ""
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            _build_task({**doc, "steps": steps[:mid]}, path, env)
            lo = mid + 1
        except UsageError as exc:
            hi, message = mid, str(exc)
    if not message:
        try:
            _build_task({**doc, "steps": steps[:hi]}, path, env)
        except UsageError as exc:
            message = str(exc)
    return hi - 1, message


# -- selectors in a browser -----------------------------------------------------------------------
def selectors_to_check(task: Task, skip: set[int]) -> list[tuple[str, str, str, list[str]]]:
    """(step label, field, selector as written, its distinct renderings) of every step not in ``skip``.

    A selector that cannot be rendered now (it uses a value only a run knows) is left out.
    """
    found = []
    for step in task.steps:
        if step.index in skip:
            continue
        for name, template in step_selectors(step):
            label = step.label
            rendered: dict[str, None] = {}
            for account in task.accounts:
                try:
                    rendered.setdefault(task.render(template, account), None)
                except UsageError:
                    pass
            if rendered:
                found.append((label, name, template, list(rendered)))
    return found


async def _check_selectors(
    task: Task, skip: set[int], executable: str, where: str
) -> tuple[int, list[str]]:
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    from warmup.browser import launch_args
    from warmup.runner.actions import describe_launch_error

    scrub = task.scrubber()
    wanted = selectors_to_check(task, skip)
    problems: list[str] = []
    async with async_playwright() as pw:
        try:
            browser = await pw.chromium.launch(executable_path=executable, headless=True, args=launch_args())
        except PlaywrightError as exc:
            raise WarmupError(f"cannot start the browser {executable}: {describe_launch_error(exc)}") from None
        try:
            page = await browser.new_page()
            for label, name, template, renderings in wanted:
                for selector in renderings:
                    try:
                        await page.locator(selector).count()
                    except PlaywrightError as exc:
                        reason = (exc.message or str(exc)).strip().splitlines()[0].removeprefix("Locator.count: ")
                        problems.append(f"{where}: {label}: {name} {template!r} is not valid: {scrub(reason)}")
                        break
        finally:
            await browser.close()
    return sum(len(r) for *_, r in wanted), problems


def run_validate(path: Path, *, with_browser: bool, browser_path: Path | None) -> int:
    """``warmup validate``: problems on stderr (exit 2), or one OK line on stdout (exit 0).

    No browser for ``--browser`` (or one that will not start): the task's problems are still
    listed, then that; the exit code is 2 if the task has problems, else the browser error's.
    """
    where = f"task file {path}"
    checked = check_task(path)
    count = 0
    browser_error: WarmupError | None = None
    if with_browser and checked.task is not None:
        from warmup.browser import find_browser

        try:
            executable = find_browser(browser_path, headless=True)
            count, found = asyncio.run(_check_selectors(checked.task, checked.bad_steps, executable, where))
            checked.problems.extend(found)
        except WarmupError as exc:
            browser_error = exc
    for problem in checked.problems:
        print(f"warmup: {problem}", file=sys.stderr)
    if len(checked.problems) > 1:
        print(f"warmup: {where}: {len(checked.problems)} problems", file=sys.stderr)
    if browser_error is not None:
        print(f"warmup: --browser: {browser_error}", file=sys.stderr)
        return 2 if checked.problems else browser_error.exit_code
    if checked.problems:
        return 2
    task = checked.task
    assert task is not None
    body = f"script {task.script}" if task.script and not task.steps else _plural(len(task.steps), "step")
    browser = f", {_plural(count, 'selector')} valid in Chromium" if with_browser else ""
    print(f"{where}: OK: task {task.id!r}, {_plural(len(task.accounts), 'account')}, {body}{browser}")
    return 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
