"""Running a Python-scripted task: the ``account`` and ``step`` a script function receives.

``step(name, optional=False, timeout_ms=None)`` is an async context manager; each block is one
step, recorded exactly like a TOML step: ``step_finished`` with its index (in the order blocks
run), ``action = "script"``, its name, duration and error (scrubbed by the recorder as usual).

Invariants, enforced in ``_Block.__aexit__``:

- a block that raises is a failed step; an optional one is recorded and its exception swallowed,
  so the script goes on; a required one ends the script (``ScriptStepFailed``), and the account
  fails (with the failure screenshot, then a retry if the task has retries) even if the script
  catches that exception;
- each block has its step timeout (the task's ``timeout_ms`` unless given), set as the page's
  default timeout, so a Playwright call inside fails with Playwright's own message (its last
  call-log line); the block itself is cut ``SAFETY_MARGIN_MS`` later, as a TOML step is;
- ``sys.exit()`` in a block is that step's failure, like any exception (never the run's end);
- blocks do not nest (one step at a time, as the log records them);
- a cancellation that is not the block's own timeout (a stop, the account timeout) passes through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urljoin

from playwright.async_api import Page

from warmup.runner.actions import SAFETY_MARGIN_MS, describe_error
from warmup.tasks import Step
from warmup.tasks.common import MAX_MS


@dataclass(frozen=True)
class ScriptAccount:
    """What a script knows of its account: id, variables (rendered, ``${env.*}`` included), base URL."""

    id: str
    vars: Mapping[str, str]
    base_url: str | None = None

    def url(self, path: str) -> str:
        """``path`` resolved against the account's base URL (as a relative ``goto`` is)."""
        return urljoin(self.base_url, path) if self.base_url else path


@dataclass(frozen=True)
class ScriptStep(Step):
    """One ``step(...)`` block: its name is what messages call it."""

    @property
    def label(self) -> str:
        return f"step {self.index + 1} ({self.args['']})"


class ScriptStepFailed(Exception):
    """A required step of a script failed: the script stops and the account fails."""

    def __init__(self, step: ScriptStep, error: str) -> None:
        super().__init__(f"{step.label}: {error}")
        self.step = step
        self.error = error


class ScriptSteps:
    """The ``step`` argument of a script function."""

    def __init__(
        self,
        page: Page,
        *,
        default_timeout_ms: int,
        on_start: Callable[[ScriptStep], None],
        on_finish: Callable[[ScriptStep, bool, float, str | None], None],
    ) -> None:
        self.page = page
        self.default_timeout_ms = default_timeout_ms
        self.on_start = on_start
        self.on_finish = on_finish
        self.count = 0
        self.current: ScriptStep | None = None
        self.failed: ScriptStepFailed | None = None  # the first required step that failed

    def __call__(self, name: str, *, optional: bool = False, timeout_ms: int | None = None) -> _Block:
        if not isinstance(name, str) or not name.strip():
            raise ValueError("step(name): the name must be a non-empty string")
        if timeout_ms is not None and (isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int)
                                       or not 1 <= timeout_ms <= MAX_MS):
            raise ValueError(f"step({name!r}): timeout_ms must be an integer from 1 to {MAX_MS}")
        return _Block(self, " ".join(name.split()), bool(optional), timeout_ms or self.default_timeout_ms)


class _Block:
    def __init__(self, steps: ScriptSteps, name: str, optional: bool, timeout_ms: int) -> None:
        self.steps = steps
        self.name = name
        self.optional = optional
        self.timeout_ms = timeout_ms
        self.step: ScriptStep | None = None
        self.timeout: asyncio.Timeout | None = None
        self.started = 0.0

    async def __aenter__(self) -> ScriptStep:
        steps = self.steps
        if steps.current is not None:
            raise RuntimeError(f"step({self.name!r}) inside {steps.current.label}: steps do not nest")
        self.step = ScriptStep(
            steps.count, "script", {"": self.name}, self.timeout_ms, self.optional, {"script": self.name}
        )
        steps.count += 1
        steps.current = self.step
        steps.page.set_default_timeout(self.timeout_ms)
        steps.on_start(self.step)
        self.started = time.perf_counter()
        # Playwright's own timeout (the page's default) fires first, with its call log; this is the net
        self.timeout = asyncio.timeout((self.timeout_ms + SAFETY_MARGIN_MS) / 1000)
        await self.timeout.__aenter__()
        return self.step

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        assert self.step is not None and self.timeout is not None
        steps = self.steps
        error: str | None = None
        try:
            await self.timeout.__aexit__(kind, exc, tb)
        except TimeoutError:  # the block's own timeout (asyncio.Timeout turns its cancel into this)
            error = f"timed out after {self.timeout_ms} ms"
        finally:
            steps.current = None
        if error is None and exc is not None:
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                return False  # a stop or the account timeout: the engine records it
            error = describe_error(exc)
        ok = error is None
        steps.on_finish(self.step, ok, (time.perf_counter() - self.started) * 1000, error)
        if ok:
            return False
        if self.optional:
            return True  # recorded; the script goes on
        failed = ScriptStepFailed(self.step, error or "failed")
        if steps.failed is None:
            steps.failed = failed
        raise failed from None


def script_account(task: Any, account: Any) -> ScriptAccount:
    """The account as a script sees it: variables rendered now (secrets included, never logged)."""
    rendered = {name: task.render(value, account) for name, value in account.vars.items()}
    return ScriptAccount(account.id, rendered, task.base_url_for(account))
