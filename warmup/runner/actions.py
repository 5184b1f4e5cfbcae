"""Perform one step's action on a Playwright page, and describe a failure in one line.

Messages built here quote texts and selectors with ``'…'`` and never escape them (no ``repr``):
a secret inside stays in its raw form, which the scrubber matches exactly. (Playwright's own
messages escape selectors JSON-style; the scrubber knows those forms too.)

Each action honours ``timeout_ms`` through Playwright's own timeouts (which give the clearest
messages); the engine adds an outer safety timeout. ``screenshot`` returns the PNG bytes and lets
the engine name and record the file. ``values`` are already rendered (variables filled in).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

SCROLL_PIXELS = 600
POLL_S = 0.1
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_API_PREFIX = re.compile(r"^[A-Za-z]+\.[A-Za-z_]+: ")
MAX_ERROR_CHARS = 500
BASE_URL_KEY = "__base_url__"  # in ``values``: the account's base URL (or None), for URL patterns


class StepFailed(Exception):
    """A step that ran but whose check did not hold (an expectation, an HTTP error status)."""


def inherent_ms(action: str, values: dict[str, Any]) -> int:
    """How long an action takes by design (waits and pauses), added to its timeout budget."""
    if action == "wait_ms":
        return int(values[""])
    if action == "scroll":
        return int(values[""]) * int(values.get("pause_ms", 0))
    return 0


@dataclass(frozen=True)
class ActionResult:
    """What an action gives back: a screenshot's PNG bytes, or a value (``evaluate``'s result)."""

    png: bytes | None = None
    value: Any = None


async def perform(
    page: Page, action: str, values: dict[str, Any], timeout_ms: int, *, base_dir: Path
) -> ActionResult:
    """Do ``action`` on ``page``; raise PlaywrightError/StepFailed on failure.

    ``base_dir`` is the task file's folder (files named by a step are relative to it).
    """
    value = values[""]
    if action == "goto":
        response = await page.goto(value, timeout=timeout_ms, wait_until="load")
        if response is not None and response.status >= 400:
            raise StepFailed(f"HTTP {response.status} {response.status_text}".rstrip() + f" from {response.url}")
    elif action == "click":
        await page.click(value, timeout=timeout_ms)
    elif action == "fill":
        await page.fill(value, values["value"], timeout=timeout_ms)
    elif action == "press":
        if values.get("selector"):
            await page.press(values["selector"], value, timeout=timeout_ms)
        else:
            await page.keyboard.press(value)
    elif action == "hover":
        await page.hover(value, timeout=timeout_ms)
    elif action == "scroll":
        pause_s = values.get("pause_ms", 0) / 1000
        for _ in range(value):
            await page.mouse.wheel(0, SCROLL_PIXELS)
            if pause_s:
                await asyncio.sleep(pause_s)
    elif action == "wait_ms":
        await asyncio.sleep(value / 1000)
    elif action == "wait_for":
        await page.wait_for_selector(value, state="visible", timeout=timeout_ms)
    elif action == "expect_title":
        await _expect_title(page, value, timeout_ms)
    elif action == "expect_text":
        await _expect_text(page, value["selector"], value["text"], timeout_ms)
    elif action == "screenshot":
        return ActionResult(png=await page.screenshot(timeout=timeout_ms))
    else:  # the task loader refuses unknown actions; this is a programming error
        raise ValueError(f"unknown action {action!r}")
    return ActionResult()


async def _expect_title(page: Page, text: str, timeout_ms: int) -> None:
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        title = await page.title()
        if text in title:
            return
        if time.monotonic() >= deadline:
            raise StepFailed(f"the title {_quoted(title)} does not contain {_quoted(text)} after {timeout_ms} ms")
        await asyncio.sleep(POLL_S)


async def _expect_text(page: Page, selector: str, text: str, timeout_ms: int) -> None:
    deadline = time.monotonic() + timeout_ms / 1000
    locator = page.locator(selector).first
    actual: str | None = None
    while True:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        try:
            actual = await locator.inner_text(timeout=max(1, min(remaining_ms, 1000)))
        except PlaywrightError:
            if time.monotonic() >= deadline:
                if actual is None:
                    raise StepFailed(f"no element matches {_quoted(selector, None)} after {timeout_ms} ms") from None
        else:
            if text in actual:
                return
        if time.monotonic() >= deadline:
            raise StepFailed(
                f"the text of {_quoted(selector, None)} is {_quoted(actual or '')}, which does not contain "
                f"{_quoted(text)} after {timeout_ms} ms"
            )
        await asyncio.sleep(POLL_S)


def _quoted(text: str, limit: int | None = 80) -> str:
    """``text`` in quotes for a message, whitespace collapsed, cut at ``limit``, never escaped.

    Unlike ``repr`` (which escapes a quote or a backslash, a form of a secret of its own), a quote
    inside stays as it is: the message is for people, and a secret in it stays raw.
    """
    return f"'{_short(text, limit)}'"


def _short(text: str, limit: int | None = 80) -> str:
    text = " ".join(text.split())
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def describe_error(exc: BaseException) -> str:
    """One line for people: Playwright's message without its API prefix, plus what it was waiting for."""
    if isinstance(exc, PlaywrightError):
        message = _ANSI.sub("", exc.message or str(exc))
        head, _, log = message.partition("Call log:")
        first = head.strip().splitlines()[0] if head.strip() else type(exc).__name__
        first = _API_PREFIX.sub("", first)
        entries = [line.strip().lstrip("- ").strip() for line in log.splitlines() if line.strip()]
        if entries and entries[0] not in first:
            first = f"{first.rstrip('.')} ({entries[0]})"
        text = first
    elif isinstance(exc, StepFailed):
        text = str(exc)
    elif isinstance(exc, TimeoutError):
        text = "timed out"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


_LAUNCH_ERR = re.compile(r"\[err\] (.*)")
_CHROMIUM_LOG_PREFIX = re.compile(r"^\[[^\]]*\]\s*")
_EXIT = re.compile(r"process did exit: exitCode=(-?\d+)")


def describe_launch_error(exc: BaseException) -> str:
    """Why a browser did not start, from the browser's own stderr that Playwright quotes."""
    if not isinstance(exc, PlaywrightError):
        return describe_error(exc)
    message = _ANSI.sub("", exc.message or "")
    if "XServer" in message or "Missing X server" in message:
        return "no X server to show a headed browser (set DISPLAY, use xvfb-run, or run without --headed)"
    errors = [line.strip() for line in _LAUNCH_ERR.findall(message) if line.strip()]
    picked = next((e for e in reversed(errors) if "ERROR:" in e or "error" in e.lower()), errors[-1] if errors else "")
    detail = _CHROMIUM_LOG_PREFIX.sub("", picked)
    exit_code = _EXIT.search(message)
    if exit_code:
        text = f"it exited at once (exit code {exit_code.group(1)})" + (f": {detail}" if detail else "")
    else:
        text = detail or describe_error(exc)
    return text[:MAX_ERROR_CHARS]
