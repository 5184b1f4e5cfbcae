"""Run locks and account locks: flocked files in ``<log>.d/`` that say who is alive and who drives what.

Layout, next to the log ``L``::

    L.d/runs/<run_id>.lock          one per live (or dead, not yet recovered) run
    L.d/accounts/<account_id>.lock  one per account ever driven on this log (kept, reused)

Each file holds one JSON object ``{"run_id", "host", "pid", "since"}`` naming its holder. The
kernel's ``flock`` is the truth, the JSON only explains: a lock file that nobody holds is not
"taken", whatever it says.

Invariants, and why they hold:

- **A run lock exists and is held before ``run_started`` is written, and is removed only after
  ``run_finished`` is on disk.** So a ``run_started`` without ``run_finished`` always has a lock
  file next to the log (if it was written by this version of warmup); when no live process holds
  that file, the runner died and ``warmup recover`` may close the run.
- **A run lock never appears unheld.** It is created under a temporary name, flocked, filled, and
  only then renamed to ``<run_id>.lock`` (rename keeps the inode, and so the lock). A recoverer
  that finds ``<run_id>.lock`` unheld therefore knows its runner is gone, never "not yet started".
- **Removing is done while holding.** The holder (or the recoverer that closed the dead run)
  unlinks the file, then closes it. Anyone who opened the file before the unlink and takes the
  lock afterwards sees that the path no longer names its inode (``same_file``), and leaves it.
- **Account lock files are never removed**: two processes could otherwise lock two different
  inodes under one name. They are small and there is one per account.
- flock is per open file description and is released by the kernel when its process dies (SIGKILL
  included): that is what makes a dead runner detectable without any heartbeat.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from warmup.events.envelope import host_and_pid, utc_now


def lock_root(log_path: Path) -> Path | None:
    """``<log>.d``, or None for a log that is not a regular file (``/dev/full``, a FIFO): no locks then.

    Next to the log's real path (symlinks resolved): two runs that name one log by two paths must
    find the same locks, or both could drive one account.
    """
    real = Path(os.path.realpath(log_path))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real.with_name(real.name + ".d")
    if not stat.S_ISREG(st.st_mode):
        return None
    return real.with_name(real.name + ".d")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def runs_dir(log_path: Path) -> Path | None:
    root = lock_root(log_path)
    return None if root is None else root / "runs"


def accounts_dir(log_path: Path) -> Path | None:
    root = lock_root(log_path)
    return None if root is None else root / "accounts"


@dataclass(frozen=True)
class Holder:
    """Who a lock file says holds it (read from the file; may be empty or stale)."""

    run_id: str = "?"
    host: str = "?"
    pid: int = 0
    since: str = ""

    def describe(self) -> str:
        return f"run {self.run_id} on host {self.host} pid {self.pid}"


def _holder_info(run_id: str) -> bytes:
    host, pid = host_and_pid()
    return orjson.dumps({"run_id": run_id, "host": host, "pid": pid, "since": utc_now()}) + b"\n"


def read_holder(fd: int) -> Holder:
    try:
        data: Any = orjson.loads(os.pread(fd, 4096, 0) or b"{}")
    except (orjson.JSONDecodeError, OSError):
        return Holder()
    if not isinstance(data, dict):
        return Holder()
    pid = data.get("pid")
    return Holder(
        str(data.get("run_id", "?")), str(data.get("host", "?")), pid if isinstance(pid, int) else 0,
        str(data.get("since", "")),
    )


def try_flock(fd: int) -> bool:
    """Take an exclusive flock without waiting; False if another open file holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (it was not removed or replaced)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


class RunLock:
    """Held by a runner for its whole life; see the module's invariants."""

    def __init__(self, log_path: Path, run_id: str) -> None:
        self.run_id = run_id
        directory = runs_dir(log_path)
        self.path: Path | None = None if directory is None else directory / f"{run_id}.lock"
        self._fd = -1

    def acquire(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.run_id}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, _holder_info(self.run_id))
            os.fsync(fd)
            os.rename(tmp, self.path)
            _fsync_dir(self.path.parent)  # durable before run_started is: a power cut cannot lose it
        except BaseException:
            os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self._fd = fd

    def release(self, *, remove: bool) -> None:
        """Let go; ``remove`` (only once ``run_finished`` is on disk) deletes the file first.

        Without ``remove`` the file stays, unheld: the run counts as dead and ``warmup recover``
        closes it (used when ``run_finished`` could not be written, e.g. on a full disk).
        """
        if self._fd < 0:
            return
        try:
            if remove and self.path is not None:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
        finally:
            os.close(self._fd)
            self._fd = -1


class AccountLock:
    """One account's lock, for one run: ``try_acquire`` and ``release``; the waiting is the caller's."""

    def __init__(self, log_path: Path, account_id: str, run_id: str) -> None:
        directory = accounts_dir(log_path)
        self.path: Path | None = None if directory is None else directory / f"{account_id}.lock"
        self.run_id = run_id
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0 or self.path is None

    def try_acquire(self) -> Holder | None:
        """Take the lock if free (returns None); else return who holds it."""
        if self.held:
            return None
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if not try_flock(fd):
                holder = read_holder(fd)
                os.close(fd)
                return holder
            try:  # who holds it: for the messages of runs that wait; the flock alone is the lock
                os.ftruncate(fd, 0)
                os.pwrite(fd, _holder_info(self.run_id), 0)
            except OSError:
                pass
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return None

    def release(self) -> None:
        if self._fd >= 0:
            try:
                os.ftruncate(self._fd, 0)  # nobody holds it now; the next holder writes its own line
            except OSError:
                pass
            os.close(self._fd)
            self._fd = -1
