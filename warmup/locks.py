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
- **Every name of one log finds the same locks** (``lock_root``). Symlinks are resolved; hard links
  are found by the log's identity (``st_dev`` + ``st_ino``): all the names the log has in its folder
  share the ``.d`` folder of one of them (the first, by name, that has one). A log with a name in
  another folder is refused, since its locks could not be found from there.
- **A lock file is only ever a regular file warmup made**: opened with ``O_NOFOLLOW`` (a planted
  symlink is refused, never followed to overwrite its target), never a FIFO (``O_NONBLOCK``), never
  a file with another name (link count 1), and written or truncated only while flocked by us.
- The folders are created mode 0700 whatever the umask (``make_private_dir``), the files 0600.
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

from warmup.errors import UsageError
from warmup.events.envelope import host_and_pid, utc_now
from warmup.events.logfile import not_a_log_file
from warmup.paths import make_private_dir

# Opening a lock file: never through a symlink, never blocking on a FIFO someone put there.
_LOCK_OPEN_FLAGS = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


class LockFileRefused(OSError):
    """A lock file's path holds something warmup did not make (a symlink, a FIFO, a hard link).

    Its ``strerror`` says what, without the path: callers print "cannot take the lock PATH: ...".
    """


def lock_root(log_path: Path) -> Path | None:
    """``<log>.d``, or None for a character device (``/dev/full``, ``/dev/null``): no locks then.

    Anything else that is not a regular file (a FIFO, a directory) is no log: ``NotALogFile``.

    Keyed on the log file itself, not on the name it was given: two runs that name one log by two
    paths must find the same locks, or both could drive one account. Symlinks are resolved; a log
    with several hard links uses the ``.d`` folder of its first name (see ``_shared_name``).
    """
    real = Path(os.path.realpath(log_path))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real.with_name(real.name + ".d")
    if stat.S_ISCHR(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        raise not_a_log_file(log_path, st.st_mode)
    if st.st_nlink > 1:
        real = real.with_name(_shared_name(real, st))
    return real.with_name(real.name + ".d")


def _shared_name(real: Path, st: os.stat_result) -> str:
    """The one name, among the hard links of the log ``real``, whose ``.d`` folder holds its locks.

    Every name of the log in its folder is found by its identity (device and inode). The first of
    them (sorted) that already has a ``.d`` folder wins, else the first: so a link added during a
    run does not move the locks. A name in another folder cannot be found from here (only a scan
    of the whole file system could): such a log is refused rather than locked twice.
    """
    names = []
    try:
        with os.scandir(real.parent) as entries:
            for entry in entries:
                if entry.inode() != st.st_ino:
                    continue
                try:
                    other = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                    names.append(entry.name)
    except OSError as exc:
        raise UsageError(
            f"the event log {real} has {st.st_nlink} names (hard links), and its folder cannot be listed to find "
            f"them ({exc.strerror}): use a log with one name"
        ) from None
    if len(names) < st.st_nlink:
        raise UsageError(
            f"the event log {real} has {st.st_nlink} names (hard links), some of them outside {real.parent}: "
            "runs through those names could not see each other's locks; remove the other links, or use one name"
        )
    names.sort()
    for name in names:
        if os.path.isdir(real.with_name(name + ".d")):
            return name
    return names[0]


def open_lock_file(path: Path, *, create: bool, exclusive: bool = False) -> int:
    """Open the lock file ``path`` read-write, refusing anything but a regular file with one name.

    ``O_NOFOLLOW``: a symlink planted at ``path`` is refused, never followed (the file would be
    truncated and written: its target would be overwritten). ``O_NONBLOCK``: a FIFO there cannot
    block us. A second hard link would let a write reach another file: refused as well.
    ``exclusive``: the file must not exist yet (``O_EXCL``, which never follows a symlink either).
    """
    flags = _LOCK_OPEN_FLAGS | (os.O_CREAT if create else 0) | (os.O_EXCL if exclusive else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockFileRefused(
                exc.errno, "it is a symbolic link, not a lock file warmup made: remove it", str(path)
            ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            what = "has another name (a hard link)" if stat.S_ISREG(st.st_mode) else "is not a regular file"
            raise LockFileRefused(errno.EPERM, f"it {what}, not a lock file warmup made: remove it", str(path))
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


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
        make_private_dir(self.path.parent)
        tmp = self.path.with_name(f".{self.run_id}.{os.getpid()}.tmp")
        try:  # a leftover of a dead process with our pid (or something planted): never reused
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        fd = open_lock_file(tmp, create=True, exclusive=True)
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
        make_private_dir(self.path.parent)
        fd = open_lock_file(self.path, create=True)
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
