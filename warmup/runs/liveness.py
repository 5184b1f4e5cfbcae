"""Who is alive and who drives what: run leases and account leases, behind one small interface.

Two implementations, chosen by the log's backend (``liveness_for``):

- ``FileLiveness``: flocked files in ``<log>.d/`` (``warmup.locks``). The kernel lets go of a dead
  process's flock at once, so a dead runner is seen without any heartbeat; flock does not reach
  across hosts, so ``recover`` leaves another host's run alone unless forced.
- ``KvLiveness`` (``warmup.runs.kv``): keys in a JetStream key-value bucket with a TTL, renewed while
  their holder is alive. A holder that dies (SIGKILL, a host gone) stops renewing and its lease
  expires after the TTL, on every host at once: ``cross_host`` is True.

Invariants every implementation keeps (``tests/test_liveness.py`` runs them on both):

- A run lease is held before ``run_started`` is appended and released (``remove=True``) only after
  ``run_finished`` is; released without ``remove`` it marks the run dead for ``recover``.
- An account lease is held by one run (one worker) at a time: ``try_acquire`` returns the holder
  when another has it.
- ``dead_runs`` yields each dead run held exclusively by this recoverer until ``closed()`` (it is
  forgotten: nothing to recover any more) or ``leave()`` (left for another time or host).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from warmup.locks import AccountLock, Holder, RunLock, read_holder, runs_dir, same_file, try_flock

if TYPE_CHECKING:
    from warmup.log import Log


class RunLease(ABC):
    """One run's lease: held by its runner (or coordinator) for the run's whole life."""

    where: str  # for messages: a lock file's path, a bucket's key

    @abstractmethod
    def acquire(self) -> None: ...

    @abstractmethod
    def release(self, *, remove: bool) -> None:
        """Let go; ``remove`` once ``run_finished`` is in the log, else the run counts as dead."""


class AccountLease(ABC):
    """One account's lease, for one run: ``try_acquire`` and ``release``; the waiting is the caller's."""

    where: str

    @property
    @abstractmethod
    def held(self) -> bool: ...

    @abstractmethod
    def try_acquire(self) -> Holder | None:
        """Take the lease if free (returns None); else return who holds it."""

    @abstractmethod
    def release(self) -> None: ...


class DeadRun(ABC):
    """A run whose holder is gone, held by this recoverer until ``closed()`` or ``leave()``."""

    run_id: str
    holder: Holder

    @abstractmethod
    def closed(self) -> None:
        """The run is closed in the log (or had nothing to close): forget its lease."""

    @abstractmethod
    def leave(self) -> None:
        """Not closed here: let go of it as it is."""


class Liveness(ABC):
    """Run and account leases of one log."""

    cross_host: bool = False  # True: a lease's expiry is seen on every host (no host check in recover)

    @abstractmethod
    def run_lease(self, run_id: str) -> RunLease: ...

    @abstractmethod
    def account_lease(self, account_id: str, run_id: str) -> AccountLease: ...

    @abstractmethod
    def dead_runs(self) -> Iterator[DeadRun]:
        """Each dead run not yet forgotten, held exclusively while the caller handles it."""

    @abstractmethod
    def run_holder(self, run_id: str) -> Holder | None:
        """Who holds ``run_id``'s lease if it is alive, else None."""

    def has_lease(self, run_id: str) -> bool:
        """Whether ``run_id`` still has a lease, alive or dead (a dead one is what ``recover`` closes)."""
        return self.run_holder(run_id) is not None


# -- flock files ------------------------------------------------------------------------------

class FileRunLease(RunLease):
    def __init__(self, log_path: Path, run_id: str) -> None:
        self._lock = RunLock(log_path, run_id)
        self.where = str(self._lock.path)

    @property
    def path(self) -> Path | None:
        return self._lock.path

    def acquire(self) -> None:
        self._lock.acquire()

    def release(self, *, remove: bool) -> None:
        self._lock.release(remove=remove)


class FileAccountLease(AccountLease):
    def __init__(self, log_path: Path, account_id: str, run_id: str) -> None:
        self._lock = AccountLock(log_path, account_id, run_id)
        self.where = str(self._lock.path)

    @property
    def held(self) -> bool:
        return self._lock.held

    def try_acquire(self) -> Holder | None:
        return self._lock.try_acquire()

    def release(self) -> None:
        self._lock.release()


class _FileDeadRun(DeadRun):
    def __init__(self, run_id: str, holder: Holder, path: Path, fd: int) -> None:
        self.run_id, self.holder, self._path, self._fd = run_id, holder, path, fd

    def closed(self) -> None:
        try:
            os.unlink(self._path)  # while holding it: see warmup.locks
        finally:
            self.leave()

    def leave(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FileLiveness(Liveness):
    """Flock files in ``<log>.d/`` (``warmup.locks``); see the module docstring."""

    cross_host = False

    def __init__(self, log_path: Path) -> None:
        self.log_path = Path(log_path)

    def run_lease(self, run_id: str) -> FileRunLease:
        return FileRunLease(self.log_path, run_id)

    def account_lease(self, account_id: str, run_id: str) -> FileAccountLease:
        return FileAccountLease(self.log_path, account_id, run_id)

    def dead_runs(self) -> Iterator[DeadRun]:
        directory = runs_dir(self.log_path)
        if directory is None or not directory.is_dir():
            return
        for path in sorted(directory.glob("*.lock")):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # its runner (or another recoverer) just removed it
            dead: _FileDeadRun | None = None
            try:
                if not try_flock(fd) or not same_file(fd, path):
                    continue  # alive, or closed and removed while we were opening it
                dead = _FileDeadRun(path.name[: -len(".lock")], read_holder(fd), path, fd)
                yield dead
            finally:
                if dead is None:
                    os.close(fd)
                else:
                    dead.leave()

    def run_holder(self, run_id: str) -> Holder | None:
        directory = runs_dir(self.log_path)
        if directory is None:
            return None
        try:
            fd = os.open(directory / f"{run_id}.lock", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            if try_flock(fd):
                return None
            return read_holder(fd)
        finally:
            os.close(fd)

    def has_lease(self, run_id: str) -> bool:
        directory = runs_dir(self.log_path)
        return directory is not None and (directory / f"{run_id}.lock").exists()


def liveness_for(log: Log | Path) -> Liveness:
    """The leases of ``log``'s backend: flock files beside a file log, a KV bucket beside a stream."""
    from warmup.log import FileLog

    if isinstance(log, Path):
        return FileLiveness(log)
    if isinstance(log, FileLog):
        return FileLiveness(log.path)
    from warmup.runs.kv import KvLiveness  # (needs nats-py: only imported for a stream)

    return KvLiveness.for_log(log)
