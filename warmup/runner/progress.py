"""What the user sees while a run goes: a rich progress bar on a terminal, else one line per account.

Everything goes to stderr (stdout gets only the run's one-line summary, from ``command``). Every
text shown here comes from the runner already scrubbed of secrets, and is escaped here: an error
can quote a page, and a page's escape sequences must not reach the terminal.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

from warmup.safe_text import escape


class Progress(Protocol):
    def start(self, run_id: str, total: int) -> None: ...
    def account_done(self, account_id: str, status: str, detail: str) -> None: ...
    def note(self, message: str) -> None: ...
    def close(self) -> None: ...


def _line(account_id: str, status: str, detail: str) -> str:
    return escape(f"{account_id}: {status}" + (f" ({detail})" if detail else ""))


class LineProgress:
    """One plain line per finished account: for logs, pipes and CI."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def start(self, run_id: str, total: int) -> None:
        self._write(f"run {run_id}: {total} account{'s' if total != 1 else ''}")

    def account_done(self, account_id: str, status: str, detail: str) -> None:
        self._write(_line(account_id, status, detail))

    def note(self, message: str) -> None:
        self._write(escape(message))

    def close(self) -> None:
        pass

    def _write(self, text: str) -> None:
        try:
            print(text, file=self.stream, flush=True)
        except (BrokenPipeError, ValueError):
            pass


class BarProgress:
    """A live bar on a terminal: done / failed / total and elapsed, finished accounts printed above."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[done]} done, {task.fields[failed]} failed / {task.total:.0f}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.task_id = None
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()

    def start(self, run_id: str, total: int) -> None:
        self.bar.start()
        self.task_id = self.bar.add_task(run_id, total=total, done=0, failed=0)

    def account_done(self, account_id: str, status: str, detail: str) -> None:
        if status == "COMPLETED":
            self.done += 1
        else:
            self.failed += 1
        from rich.text import Text

        colour = {"COMPLETED": "green", "FAILED": "red"}.get(status, "yellow")
        line = Text.assemble(escape(f"{account_id}: "), (status, colour), escape(f" ({detail})") if detail else "")
        self.bar.console.print(line, highlight=False, soft_wrap=True)
        if self.task_id is not None:
            self.bar.update(self.task_id, advance=1, done=self.done, failed=self.failed)

    def note(self, message: str) -> None:
        self.bar.console.print(escape(message), markup=False, highlight=False)

    def close(self) -> None:
        self.bar.stop()


def make_progress() -> Progress:
    return BarProgress() if sys.stderr.isatty() else LineProgress()
