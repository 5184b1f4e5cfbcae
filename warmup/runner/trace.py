"""Playwright traces of an attempt, kept only without secrets.

SEAM (issue 11, point 8): the engine calls ``Tracer.start(context)`` once the account's context
is open, and ``Tracer.stop(context, failed=...)`` before it closes; ``stop`` returns a
``TraceOutcome``: the archive's bytes to keep as ``trace-<attempt>.zip`` (or None), and a note
saying why none was kept when one was recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from playwright.async_api import BrowserContext


@dataclass(frozen=True)
class TraceOutcome:
    data: bytes | None = None  # the redacted archive to keep, or None
    note: str | None = None  # why a recorded trace was not kept


class Tracer:
    def __init__(self, mode: str, secrets: list[str]) -> None:
        self.mode = mode
        self.secrets = secrets

    async def start(self, context: BrowserContext) -> None:
        return None

    async def stop(self, context: BrowserContext, *, failed: bool) -> TraceOutcome:
        return TraceOutcome()
