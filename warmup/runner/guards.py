"""What runs around a step's action: its conditions, its ``fail_if`` watch, its ``extract``.

Invariants:

- A condition costs nothing: ``visible`` asks whether a visible element matches right now (a
  count, never a wait), ``url`` matches the page's current URL. Values come rendered.
- ``fail_if`` races the action against the element becoming visible. The loser is cancelled and
  awaited, so nothing of the step runs on after it; the watch carries its own timeout (the
  step's), so the browser side stops waiting by itself too. After an action that won, the
  element is looked for once more when the page has parsed (an action that submits a form may
  return as soon as the answer starts): a refused login fails at its click, with the site's text.
- An extracted value is text: a selector's inner text (trimmed) or attribute, or an action's result
  (a string as it is, anything else as JSON).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from warmup.runner.actions import StepFailed
from warmup.tasks.steps import Condition, Extract
from warmup.tasks.urls import url_matcher

T = TypeVar("T")
TEXT_TIMEOUT_MS = 1_000  # to read a fail_if element's text: it is visible already
MAX_TEXT_CHARS = 300  # of a fail_if element's text in the error


def _visible(page: Page, selector: str) -> Locator:
    return page.locator(selector).filter(visible=True)


async def condition_holds(page: Page, condition: Condition, value: str, base_url: str | None) -> bool:
    """Whether ``condition`` (its value rendered as ``value``) holds now; never waits."""
    if condition.kind == "visible":
        return await _visible(page, value).count() > 0
    return url_matcher(value, base_url).search(page.url) is not None


async def with_fail_if(page: Page, selector: str, action: Awaitable[T], timeout_ms: int) -> T:
    """``action``'s result, unless an element matching ``selector`` is visible first (StepFailed)."""
    watched = _visible(page, selector).first
    act = asyncio.ensure_future(action)
    watch = asyncio.ensure_future(watched.wait_for(state="visible", timeout=timeout_ms))
    try:
        await asyncio.wait({act, watch}, return_when=asyncio.FIRST_COMPLETED)
        appeared = watch.done() and watch.exception() is None
        if not appeared and act.done():
            result = act.result()  # (a failed action raises here)
            await _settled(page, timeout_ms)
            if await watched.count() == 0:
                return result
        elif not appeared:
            problem = watch.exception()
            if not isinstance(problem, PlaywrightTimeout):
                raise problem  # (a selector the browser refuses: said as the step's error)
            return await act  # the watch timed out: the action decides
        raise StepFailed(f"fail_if '{selector}' appeared: {await _text(watched)}")
    finally:
        for task in (act, watch):
            if not task.done():
                task.cancel()
        await asyncio.gather(act, watch, return_exceptions=True)


async def _settled(page: Page, timeout_ms: int) -> None:
    """The current document parsed (returns at once unless a navigation is under way)."""
    try:
        await page.wait_for_load_state("domcontentloaded", timeout=timeout_ms)
    except PlaywrightError:
        pass  # a page that never settles: fail_if is looked for as it is


async def _text(locator: Locator) -> str:
    try:
        text = " ".join((await locator.inner_text(timeout=TEXT_TIMEOUT_MS)).split())
    except PlaywrightError:
        return "(its text could not be read)"
    text = text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"
    return f"'{text}'" if text else "(no text)"


async def extract_value(page: Page, extract: Extract, selector: str | None, result: Any, timeout_ms: int) -> str:
    """The value ``extract`` names: from ``selector`` (rendered) on the page, else the action's ``result``."""
    if selector is None:
        return result if isinstance(result, str) else orjson.dumps(result).decode()
    locator = page.locator(selector).first
    if extract.attribute is None:
        return (await locator.inner_text(timeout=timeout_ms)).strip()
    value = await locator.get_attribute(extract.attribute, timeout=timeout_ms)
    if value is None:
        raise StepFailed(f"extract: '{selector}' has no attribute '{extract.attribute}'")
    return value
