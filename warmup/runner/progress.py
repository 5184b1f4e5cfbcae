"""What the user sees while a run goes: a rich progress bar on a terminal, else one line per account.

Everything goes to stderr (stdout gets only the run's one-line summary, from ``command``). Every
text shown here comes from the runner already scrubbed of secrets, and is escaped here: an error
can quote a page, and a page's escape sequences must not reach the terminal.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Protocol, TextIO

from warmup.safe_text import escape

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID


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


def summary(counts: dict[str, int], total: int) -> str:
    """``3 done, 1 failed, 2 interrupted / 6``: each final status as what it is.

    CANCELLED (never started: the run was stopped, or another run held the account) and INTERRUPTED
    (cut off by Ctrl-C/SIGTERM) are not failures of the account; they are counted under their own
    word, shown once there is one. "done" and "failed" are always shown.
    """
    parts = [f"{counts.get('COMPLETED', 0)} done", f"{counts.get('FAILED', 0)} failed"]
    parts += [f"{counts[s]} {s.lower()}" for s in ("CANCELLED", "INTERRUPTED") if counts.get(s)]
    parts += [f"{n} {s.lower()}" for s, n in counts.items()
              if n and s not in ("COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED")]
    return f"{', '.join(parts)} / {total}"


class BarProgress:
    """A live bar on a terminal: done / failed / cancelled / interrupted / total and elapsed, finished accounts
    printed above."""

    COLOURS = {"COMPLETED": "green", "FAILED": "red", "CANCELLED": "magenta", "INTERRUPTED": "magenta"}

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[summary]}", markup=False),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.task_id: TaskID | None = None
        self.total = 0
        self.counts: dict[str, int] = {}
        self.started = time.monotonic()

    def summary(self) -> str:
        return summary(self.counts, self.total)

    def start(self, run_id: str, total: int) -> None:
        self.total = total
        self.bar.start()
        self.task_id = self.bar.add_task(run_id, total=total, summary=self.summary())

    def account_done(self, account_id: str, status: str, detail: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        from rich.text import Text

        colour = self.COLOURS.get(status, "yellow")
        line = Text.assemble(escape(f"{account_id}: "), (status, colour), escape(f" ({detail})") if detail else "")
        self.bar.console.print(line, highlight=False, soft_wrap=True)
        if self.task_id is not None:
            self.bar.update(self.task_id, advance=1, summary=self.summary())

    def note(self, message: str) -> None:
        self.bar.console.print(escape(message), markup=False, highlight=False)

    def close(self) -> None:
        self.bar.stop()


def make_progress() -> Progress:
    return BarProgress() if sys.stderr.isatty() else LineProgress()
