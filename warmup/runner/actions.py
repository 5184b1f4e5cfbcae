"""Perform one step's action on a Playwright page, and describe a failure in one line.

Messages built here quote texts and selectors with ``'…'`` and never escape them (no ``repr``):
a secret inside stays in its raw form, which the scrubber matches exactly. (Playwright's own
messages escape selectors JSON-style; the scrubber knows those forms too.)

Each action honours ``timeout_ms`` through Playwright's own timeouts (which give the clearest
messages), or its own deadline for the checks it polls; the engine adds an outer safety timeout.
``screenshot`` returns the PNG bytes and lets the engine name and record the file; ``evaluate``
returns its expression's result, made JSON-able. ``values`` are already rendered (variables filled
in), keyed as the task's ``Step.args`` (see ``warmup.tasks.actions``), plus ``BASE_URL_KEY``.
``save_state`` is the engine's: ``perform`` refuses it.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from warmup.tasks.urls import REGEX_PREFIX, url_matcher

SCROLL_PIXELS = 600
POLL_S = 0.1
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_API_PREFIX = re.compile(r"^[A-Za-z]+\.[A-Za-z_]+: ")
MAX_ERROR_CHARS = 500
SAFETY_MARGIN_MS = 2_000  # a step's outer timeout beyond Playwright's own (TOML and scripted steps)
BASE_URL_KEY = "__base_url__"  # in ``values``: the account's base URL (or None), for URL patterns
MAX_VALUE_DEPTH = 32  # how deeply an ``evaluate`` result may nest (as a task file's values)


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
    if action == "save_state":  # the engine saves the state itself; reaching here is a bug
        raise RuntimeError("save_state is done by the engine, never by perform()")
    value = values[""]
    if action == "goto":
        response = await page.goto(value, timeout=timeout_ms, wait_until="load")
        if response is not None and response.status >= 400:
            raise StepFailed(f"HTTP {response.status} {response.status_text}".rstrip() + f" from {response.url}")
    elif action == "click":
        await page.click(value, timeout=timeout_ms)
    elif action == "fill":
        await page.fill(value, values["value"], timeout=timeout_ms)
    elif action == "select":
        if "label" in values:
            await page.select_option(value, label=values["label"], timeout=timeout_ms)
        else:
            await page.select_option(value, value=values["value"], timeout=timeout_ms)
    elif action == "check":
        await page.check(value, timeout=timeout_ms)
    elif action == "uncheck":
        await page.uncheck(value, timeout=timeout_ms)
    elif action == "upload":
        await page.set_input_files(value, _upload_paths(values["files"], base_dir), timeout=timeout_ms)
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
    elif action == "wait_for_url":
        await _wait_for_url(page, value, values.get(BASE_URL_KEY), timeout_ms)
    elif action == "evaluate":
        return ActionResult(value=await _evaluate(page, value, timeout_ms))
    elif action == "expect_title":
        await _expect_title(page, _TextCheck.of(value, values), timeout_ms)
    elif action == "expect_text":
        await _expect_text(page, value["selector"], _TextCheck.of(value["text"], values), timeout_ms)
    elif action == "expect_url":
        await _expect_url(page, value, values.get(BASE_URL_KEY), timeout_ms)
    elif action == "screenshot":
        return ActionResult(png=await page.screenshot(timeout=timeout_ms))
    else:  # the task loader refuses unknown actions; this is a programming error
        raise ValueError(f"unknown action {action!r}")
    return ActionResult()


def _upload_paths(files: list[str], base_dir: Path) -> list[Path]:
    """The files to upload, relative to the task file's folder; each one must exist now."""
    paths = [base_dir / name for name in files]
    for path in paths:
        if not path.is_file():
            raise StepFailed(f"no file '{path}' to upload")
    return paths


@dataclass(frozen=True)
class _TextCheck:
    """What ``expect_title`` / ``expect_text`` look for: text contained, or a regular expression searched."""

    text: str
    ignore_case: bool = False
    regex: bool = False

    @classmethod
    def of(cls, text: str, values: dict[str, Any]) -> _TextCheck:
        return cls(text, bool(values.get("ignore_case")), bool(values.get("regex")))

    def matcher(self) -> Callable[[str], bool]:
        """A test of an actual text; a pattern that does not compile (after rendering) fails the step."""
        if self.regex:
            try:
                pattern = re.compile(self.text, re.IGNORECASE if self.ignore_case else 0)
            except re.error as exc:
                raise StepFailed(f"{_quoted(self.text)} is not a valid regular expression ({exc})") from None
            return lambda actual: pattern.search(actual) is not None
        if self.ignore_case:
            folded = self.text.casefold()
            return lambda actual: folded in actual.casefold()
        return lambda actual: self.text in actual

    def __str__(self) -> str:
        if self.regex:
            return f"match the regular expression {_quoted(self.text)}" + (" ignoring case" if self.ignore_case else "")
        return f"contain {_quoted(self.text)}" + (" (ignoring case)" if self.ignore_case else "")


async def _expect_title(page: Page, check: _TextCheck, timeout_ms: int) -> None:
    matches = check.matcher()
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        title = await page.title()
        if matches(title):
            return
        if time.monotonic() >= deadline:
            raise StepFailed(f"the title {_quoted(title)} does not {check} after {timeout_ms} ms")
        await asyncio.sleep(POLL_S)


async def _expect_text(page: Page, selector: str, check: _TextCheck, timeout_ms: int) -> None:
    """The element's rendered text (``inner_text``: CSS ``text-transform`` applied) passes ``check``."""
    matches = check.matcher()
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
            if matches(actual):
                return
        if time.monotonic() >= deadline:
            raise StepFailed(
                f"the text of {_quoted(selector, None)} is {_quoted(actual or '')}, which does not {check} "
                f"after {timeout_ms} ms"
            )
        await asyncio.sleep(POLL_S)


def _url_mismatch(url: str, pattern: str, base_url: str | None) -> str:
    """Why a URL does not match: the actual URL quoted, and a hint for a relative glob with no base."""
    text = f"the URL is {_quoted(url, 200)}, which does not match {_quoted(pattern, 200)}"
    if not base_url and not pattern.startswith((REGEX_PREFIX, "*")) and not urlsplit(pattern).scheme:
        text += " (a relative pattern, and the account has no base_url)"
    return text


async def _expect_url(page: Page, pattern: str, base_url: str | None, timeout_ms: int) -> None:
    """The page's URL matches ``pattern`` (a glob or ``re:``), checked until the timeout."""
    matcher = url_matcher(pattern, base_url)
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        if matcher.search(page.url):
            return
        if time.monotonic() >= deadline:
            raise StepFailed(f"{_url_mismatch(page.url, pattern, base_url)} after {timeout_ms} ms")
        await asyncio.sleep(POLL_S)


async def _wait_for_url(page: Page, pattern: str, base_url: str | None, timeout_ms: int) -> None:
    """Wait until the page is at a URL matching ``pattern`` and that page has loaded."""
    matcher = url_matcher(pattern, base_url)
    try:
        await page.wait_for_url(lambda url: matcher.search(url) is not None, timeout=timeout_ms)
    except PlaywrightTimeoutError:
        if matcher.search(page.url):
            raise StepFailed(f"the page at {_quoted(page.url, 200)} did not finish loading after {timeout_ms} ms"
                             ) from None
        raise StepFailed(f"{_url_mismatch(page.url, pattern, base_url)} after {timeout_ms} ms") from None


async def _evaluate(page: Page, expression: str, timeout_ms: int) -> Any:
    """The expression's result (a promise is awaited), as JSON would hold it."""
    try:
        result = await asyncio.wait_for(page.evaluate(expression), timeout_ms / 1000)
    except TimeoutError:
        raise StepFailed(f"the expression did not finish in {timeout_ms} ms") from None
    return _jsonable(result)


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A value from the page as JSON holds it, as ``JSON.stringify`` would write it in spirit.

    NaN and the infinities become None; a date becomes its ISO text; an integer beyond 64 bits
    (a BigInt) becomes its decimal text; anything else unknown becomes its text.
    """
    if depth > MAX_VALUE_DEPTH:
        raise StepFailed(f"the expression's result nests more than {MAX_VALUE_DEPTH} levels deep")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item, depth + 1) for key, item in value.items()}
    return str(value)


def _quoted(text: str, limit: int | None = 80) -> str:
    """``text`` in quotes for a message, whitespace collapsed, cut at ``limit``, never escaped.

    Unlike ``repr`` (which escapes a quote or a backslash, a form of a secret of its own), a quote
    inside stays as it is: the message is for people, and a secret in it stays raw.
    """
    return f"'{_short(text, limit)}'"


def _short(text: str, limit: int | None = 80) -> str:
    text = " ".join(text.split())
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


# Call-log lines that say nothing about the cause: a retry's pause, a retry itself.
_LOG_NOISE = re.compile(r"\Await(?:ing)? \d+ ?ms\Z|\Aretrying .*action(?:, attempt #\d+)?\Z")
_LOG_REPEAT = re.compile(r"\A(?:-|\d+ ×)\s*")


def describe_error(exc: BaseException) -> str:
    """One line for people: Playwright's message without its API prefix, plus where it stopped.

    For a call log (``Call log:`` and its ``- ...`` lines), the LAST line that says something is
    quoted: it is where the call stood when it gave up (``waiting for scheduled navigations to
    finish`` after a click whose navigation never came, ``<div> intercepts pointer events``), where
    the first line only repeats what the call was (``waiting for locator("#go")``).
    """
    if isinstance(exc, PlaywrightError):
        message = _ANSI.sub("", exc.message or str(exc))
        head, _, log = message.partition("Call log:")
        first = head.strip().splitlines()[0] if head.strip() else type(exc).__name__
        first = _API_PREFIX.sub("", first)
        entries = [_LOG_REPEAT.sub("", line.strip()).strip() for line in log.splitlines() if line.strip()]
        entries = [entry for entry in entries if entry and not _LOG_NOISE.search(entry)]
        if entries and entries[-1] not in first:
            first = f"{first.rstrip('.')} ({entries[-1]})"
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
