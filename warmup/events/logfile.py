"""Opening the event log: the one place that refuses a log that is not a regular file.

Invariant: **no command ever blocks on opening the log, or reads or writes one that is not a
file.** A FIFO at ``--log`` would block ``open()`` for ever (a reader waits for a writer), and a
writer's appends would block once the pipe is full; a socket, a directory or a block device is
no log either. So every command that opens the log (``tail``, ``tail -f`` and its follower,
``project``, ``replay``, ``report``, ``recover``, ``run``) opens it through ``open_log`` or checks
it with ``check_log_file`` first:

- ``open_log`` opens with ``O_NONBLOCK`` (a FIFO then opens at once), ``fstat``\\s the descriptor it
  got (so what is checked is what was opened, with no race against a rename), refuses anything
  that is not a regular file, and clears ``O_NONBLOCK`` again.
- Character devices are refused too, except by the writer (``devices_ok``): ``--log /dev/full`` is
  how a full disk is simulated, and writes to a character device never block on a reader.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

from warmup.errors import UsageError


class NotALogFile(UsageError):
    """``--log`` names something that exists but is not a regular file (a FIFO, a directory...). Exit 2."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"


def not_a_log_file(path: str | os.PathLike[str], mode: int) -> NotALogFile:
    return NotALogFile(f"{path} is not a file but a {_kind(mode)}: --log wants the event log (a .jsonl file)")


def check_log_file(path: str | os.PathLike[str]) -> None:
    """Refuse ``path`` if it exists and is not a regular file; a missing path is the caller's to report."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if not stat.S_ISREG(mode):
        raise not_a_log_file(path, mode)


def open_log(path: str | os.PathLike[str], flags: int = os.O_RDONLY, mode: int = 0o600, *,
             devices_ok: bool = False) -> int:
    """``os.open(path, flags | O_CLOEXEC, mode)``, refusing (``NotALogFile``) what is not a regular file.

    Never blocks in ``open()``, whatever ``path`` is. OSErrors of the open itself (missing file,
    permission) are raised as they are, for the caller to word.
    """
    fd = os.open(Path(path), flags | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    try:
        st_mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(st_mode) or (devices_ok and stat.S_ISCHR(st_mode))):
            raise not_a_log_file(path, st_mode)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd
