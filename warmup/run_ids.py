"""Run ids as people type them: a whole id, a unique prefix of one, or ``last``; one resolver for every command.

``show``, ``report``, ``run --resume``, ``run --retry-failed`` and ``replay --run`` all go through
``resolve_run_id``, so they accept and refuse the same things with the same words:

- a whole id names that run, even if it is also the prefix of a longer one;
- ``last`` names the run started last in the log (the last ``run_started`` line);
- a prefix names the one run whose id starts with it; several matches are refused with a few of them.

The runs known are read from the event log (``runs_in_log``), never from the database: ``warmup run``
must not import sqlite3, and the log is the record. Reading it is cheap: the file is mapped and searched
for the bytes ``"run_started"`` in C, and only the lines holding them are decoded (one per run), so a
100 MB log is scanned in a fraction of a second. This module imports nothing that opens a database.
"""

from __future__ import annotations

import mmap
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import orjson

from warmup.errors import UsageError, no_log, no_run

LAST = "last"
NEEDLE = b'"run_started"'
SHOWN_WHEN_AMBIGUOUS = 3


def runs_in_log(log_path: Path) -> list[str]:
    """The run ids of the log's ``run_started`` events, in log order (oldest first), each once.

    Raises ``UsageError`` (the one "no event log" message) when there is no log; a path that is not
    a regular file (a FIFO, a folder) is refused without blocking on it.
    """
    try:
        fd = os.open(log_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UsageError(no_log(log_path)) from None
    except IsADirectoryError:
        raise UsageError(f"{log_path} is a folder: --log wants the event log (a .jsonl file)") from None
    except OSError as exc:
        raise UsageError(f"cannot read the event log {log_path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{log_path} is not a regular file: --log wants the event log (a .jsonl file)")
        if info.st_size == 0:
            return []
        with mmap.mmap(fd, info.st_size, prot=mmap.PROT_READ) as data:
            return _scan(data)
    finally:
        os.close(fd)


def _scan(data: mmap.mmap) -> list[str]:
    seen: dict[str, None] = {}
    pos = 0
    while True:
        hit = data.find(NEEDLE, pos)
        if hit < 0:
            break
        start = data.rfind(b"\n", 0, hit) + 1
        end = data.find(b"\n", hit)
        if end < 0:  # a torn last line: its writer may still be writing it
            break
        pos = end + 1
        try:
            event = orjson.loads(data[start:end])
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("type") == "run_started":
            run_id = event.get("run_id")
            if isinstance(run_id, str) and run_id:
                seen.setdefault(run_id, None)
    return list(seen)


def resolve_run_id(text: str, known: Sequence[str], where: object) -> str:
    """The one run ``text`` names among ``known`` (oldest first); ``where`` names the source in messages.

    Exit 2 (``UsageError``) for no match or several; never guesses between runs.
    """
    if text == LAST:
        if not known:
            raise UsageError(f"no run in {where} yet, so 'last' names none: start one with `warmup run TASK.toml`")
        return known[-1]
    if text in known:
        return text
    matches = [r for r in known if r.startswith(text)] if text else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(matches[-SHOWN_WHEN_AMBIGUOUS:])
        more = f" and {len(matches) - SHOWN_WHEN_AMBIGUOUS} more" if len(matches) > SHOWN_WHEN_AMBIGUOUS else ""
        raise UsageError(f"{text!r} matches {len(matches)} runs in {where} ({shown}{more}): give more of the run id")
    raise UsageError(no_run(text, where))


def resolve_from_log(log_path: Path, text: str) -> str:
    """``resolve_run_id`` over the runs of the event log at ``log_path``."""
    return resolve_run_id(text, runs_in_log(log_path), log_path)
