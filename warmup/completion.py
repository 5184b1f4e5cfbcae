"""Shell completion for ``warmup``: run ids from the event log, task files (``*.toml``) from the disk.

Click drives it (``_WARMUP_COMPLETE=bash_source warmup`` prints the script to ``eval``; zsh and fish
the same, see README). These functions run on every Tab press, so they stay cheap and silent:

- run ids come from ``warmup.run_ids.runs_in_log`` (one C-speed search of the log for
  ``"run_started"``), newest first, plus ``last``; the log is the one given with ``--log`` before the
  Tab, else ``$WARMUP_LOG``, else the default. Nothing here opens a database.
- task files: the ``*.toml`` files and the folders under what was typed so far.

Any error (no log, an unreadable folder) completes nothing rather than printing into the shell.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from click.shell_completion import CompletionItem

from warmup.paths import DEFAULT_LOG, is_stream_url
from warmup.run_ids import LAST, runs_in_log

MAX_ITEMS = 200


def _log_path(ctx: click.Context) -> Path | str:
    given = ctx.params.get("log_path") or os.environ.get("WARMUP_LOG") or DEFAULT_LOG
    return given if is_stream_url(given) else Path(given)


def complete_run_id(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Run ids of the log that start with ``incomplete``, newest first, and ``last``."""
    try:
        known = runs_in_log(_log_path(ctx))
    except Exception:  # noqa: BLE001 (a Tab press must never print a traceback into the shell)
        return []
    items = [CompletionItem(LAST, help="the run started last")] if LAST.startswith(incomplete) else []
    matches = [r for r in reversed(known) if r.startswith(incomplete)]
    return items + [CompletionItem(r) for r in matches[:MAX_ITEMS]]


def complete_task_file(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """``*.toml`` files and folders whose path starts with ``incomplete``."""
    folder, _, stem = incomplete.rpartition("/")
    base = Path(folder or ".") if folder or not incomplete.startswith("/") else Path("/")
    prefix = f"{folder}/" if folder or incomplete.startswith("/") else ""
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        return []
    out = []
    for entry in entries:
        if not entry.name.startswith(stem) or (entry.name.startswith(".") and not stem.startswith(".")):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if is_dir:
            out.append(CompletionItem(f"{prefix}{entry.name}/", type="plain"))
        elif entry.name.endswith(".toml"):
            out.append(CompletionItem(f"{prefix}{entry.name}"))
    return out[:MAX_ITEMS]
