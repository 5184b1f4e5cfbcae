"""Playwright traces of an attempt, kept only without secrets.

The engine calls ``Tracer.start(context)`` once the account's context is open, and
``Tracer.stop(context, failed=...)`` before it closes; ``stop`` returns a ``TraceOutcome``: the
archive's bytes to keep as ``trace-<attempt>.zip`` (or None), and a note saying why none was kept
when one should have been.

Modes (the task's ``trace``): ``off`` records nothing; ``on-failure`` records every attempt and
keeps the trace of a failed one (a successful attempt's trace is discarded by Playwright, never
written); ``on`` keeps every attempt's trace.

What is recorded: the actions with their call logs, the console, a DOM snapshot before and
after each action, and the network (requests, responses and bodies: Playwright records the
network only with the snapshots). The screencast (a filmstrip of JPEG frames) only with ``on`` in
a task without secrets: it costs the most CPU, on every attempt, kept or not (bench/runner.py's
docstring), a failure has its own screenshot, and a secret typed into a plain text field shows in
its frames, so a task with secrets would drop them anyway.

Invariants: a trace is written by Playwright into a private temporary folder, never under the
artifacts folder; its bytes leave ``stop`` only redacted and checked (``warmup.runner.redact``),
or as written when the task has no secret at all. Stopping never raises for a browser that went
away: it gives a note instead.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from playwright.async_api import BrowserContext
from playwright.async_api import Error as PlaywrightError

from warmup.runner.actions import describe_error
from warmup.runner.redact import COOKIE_MIN, cookie_values, find_leak, redact_archive

MODES = ("off", "on-failure", "on")
# DOM snapshots (and with them the network: Playwright records it only with the snapshots) in
# on-failure traces. They cost on every attempt: on bench/runner.py +6-10% at concurrency 1 and
# +15-19% at 8 against off (2 shared cores, CPU-bound); without them ~0% but a trace holds only the
# actions, their call logs and the console. False trades the evidence for the 15% goal at 8.
ON_FAILURE_SNAPSHOTS = True
STOP_TIMEOUT_S = 30.0  # writing a trace of a long attempt takes a while; a hung browser does not stall the account


@dataclass(frozen=True)
class TraceOutcome:
    data: bytes | None = None  # the redacted archive to keep, or None
    note: str | None = None  # why a trace that should have been kept was not


def keep_without_secrets(raw: bytes, secrets: list[str]) -> TraceOutcome:
    """``raw`` (a trace archive) redacted and checked; without secrets (cookies included), ``raw`` itself."""
    try:
        secrets = sorted({*secrets, *cookie_values(raw)}, key=len, reverse=True)
        if not secrets:
            return TraceOutcome(raw)
        clean, _dropped = redact_archive(raw, secrets)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return TraceOutcome(note=f"trace not kept: Playwright's archive is not a readable zip ({exc})")
    except Exception as exc:  # (a bug, a value too deep to walk): never the account's failure
        return TraceOutcome(note=f"trace not kept: it could not be redacted ({type(exc).__name__})")
    leak = find_leak(clean, secrets)
    if leak is not None:
        return TraceOutcome(note=f"trace not kept: {leak}")
    return TraceOutcome(clean)


def _keep_from_folder(folder: Path, secrets: list[str]) -> TraceOutcome:
    """The trace Playwright wrote into ``folder``, redacted and checked; the folder is removed."""
    try:
        raw = (folder / "trace.zip").read_bytes()
    except OSError as exc:
        return TraceOutcome(note=f"trace not kept: it could not be read ({exc.strerror})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return keep_without_secrets(raw, secrets)


async def _cookie_values(context: BrowserContext) -> list[str]:
    """The values of the context's cookies now (``COOKIE_MIN`` characters or more): secrets of a trace."""
    try:
        return [c["value"] for c in await context.cookies() if len(c.get("value", "")) >= COOKIE_MIN]
    except PlaywrightError:
        return []


class Tracer:
    """The trace of one attempt (one browser context)."""

    def __init__(self, mode: str, secrets: list[str]) -> None:
        self.mode = mode
        self.secrets = secrets
        self._started = False
        self._problem: str | None = None  # why tracing could not start

    async def start(self, context: BrowserContext) -> None:
        if self.mode == "off":
            return
        try:
            screencast = self.mode == "on" and not self.secrets
            snapshots = self.mode == "on" or ON_FAILURE_SNAPSHOTS
            await context.tracing.start(screenshots=screencast, snapshots=snapshots, sources=False)
            self._started = True
        except PlaywrightError as exc:
            self._problem = f"no trace: tracing could not start: {describe_error(exc)}"

    async def stop(self, context: BrowserContext, *, failed: bool) -> TraceOutcome:
        keep = self.mode == "on" or (self.mode == "on-failure" and failed)
        if not self._started:
            return TraceOutcome(note=self._problem if keep else None)
        self._started = False
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                if not keep:
                    await context.tracing.stop()  # discarded by Playwright: nothing is written
                    return TraceOutcome()
                cookies = await _cookie_values(context)  # set by a page's script too, never sent yet
                folder = Path(tempfile.mkdtemp(prefix="warmup-trace-"))  # mode 0700
                try:
                    await context.tracing.stop(path=folder / "trace.zip")
                except BaseException:
                    await asyncio.to_thread(shutil.rmtree, folder, True)
                    raise
        except (PlaywrightError, OSError, TimeoutError) as exc:
            if not keep:
                return TraceOutcome()
            return TraceOutcome(note=f"trace not kept: it could not be written: {describe_error(exc)}")
        # reading, redacting (CPU) and removing the folder: all off the event loop
        return await asyncio.to_thread(_keep_from_folder, folder, [*self.secrets, *cookies])
