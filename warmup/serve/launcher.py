"""Starts each run as its own ``warmup run`` child process, and cancels and waits for them.

Invariants:

- **A run is never in-process.** The server only spawns ``python -m cli run TASK --no-project
  --trigger T --run-id ID``; the child appends to the log like any ``warmup run``, so the browser
  side never shares a process (or an event loop) with the server's SQLite reads.
- **A run outlives the server.** Each child has its own session (a Ctrl-C typed at the server's
  terminal or a SIGKILL of the server does not reach it) and writes its output to a file under
  ``serve-runs/`` (not a pipe, which would break when the server dies). A restarted server sees the
  run in the log and the tables, and can still cancel it through its run lease's holder.
- **Cancel is SIGINT**, as Ctrl-C at a terminal: the runner ends the run INTERRUPTED (its accounts
  INTERRUPTED or CANCELLED) and exits 130.
- **Which task is running** comes from the log, not from the children alone: ``note`` is fed every
  event the server follows, so a run started from a terminal counts as well.

Everything here runs on the server's event loop and never blocks it: process creation is
asynchronous, and the lease lookup of ``cancel`` (a file lock or a key-value read) runs in a thread.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anyio import to_thread

from warmup.events.envelope import host_and_pid, new_run_id
from warmup.log import Log
from warmup.paths import make_private_dir
from warmup.runs.liveness import liveness_for
from warmup.runs.origin import RunOrigin
from warmup.serve.catalog import TaskEntry
from warmup.serve.config import TOKEN_ENV, ServeConfig

START_WAIT_S = 60.0  # how long `start` waits for the child's run_started (a cold browser on one core)
KILL_AFTER_S = 30.0  # after SIGINT at shutdown, how long a child gets before SIGKILL
OUTPUT_TAIL = 4000  # bytes of a child's output read back when it failed to start
RECENT = 1000  # exited launches (and finished runs) remembered


@dataclass
class Launch:
    """One child process and its run."""

    run_id: str
    task_id: str
    origin: RunOrigin
    proc: asyncio.subprocess.Process
    output: Path
    started: asyncio.Event = field(default_factory=asyncio.Event)  # run_started seen, or the child exited
    seen_started: bool = False

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None


class _Recent(OrderedDict[str, None]):
    """The last ``RECENT`` run ids added (``in`` asks), oldest forgotten first."""

    def add(self, run_id: str) -> None:
        self[run_id] = None
        while len(self) > RECENT:
            self.popitem(last=False)


class StartFailed(Exception):
    """The child exited before its run started: ``str(exc)`` is its last words (one line)."""

    def __init__(self, message: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Launcher:
    def __init__(self, config: ServeConfig, log: Log, say: Callable[[str], None]) -> None:
        self.config = config
        self.log = log
        self.say = say
        self.launches: dict[str, Launch] = {}  # children alive (an exited one moves to ``recent``)
        self.recent = _Recent()  # the runs of the last RECENT children that exited
        self._finished = _Recent()  # run_finished seen lately (see ``seed``)
        # run id -> task id of every run started and not finished, as the log tells it
        self.in_flight: dict[str, str] = {}
        self.accepting = True
        self._waiters: set[asyncio.Task[Any]] = set()

    # -- what is running --------------------------------------------------------------------
    def note(self, event: dict[str, Any]) -> None:
        """Fed with every event the server follows (live): keeps ``in_flight`` and wakes ``start``."""
        kind, run_id = event.get("type"), event.get("run_id")
        if not isinstance(run_id, str):
            return
        if kind == "run_started" and isinstance(event.get("task_id"), str):
            self.in_flight[run_id] = event["task_id"]
            launch = self.launches.get(run_id)
            if launch is not None:
                launch.seen_started = True
                launch.started.set()
        elif kind == "run_finished":
            self.in_flight.pop(run_id, None)
            self._finished.add(run_id)

    def seed(self, runs: dict[str, str]) -> None:
        """Runs the tables show RUNNING with a live lease at start-up (run id -> task id); one whose
        ``run_finished`` was followed meanwhile is left out."""
        self.in_flight.update({r: t for r, t in runs.items() if r not in self._finished})

    def foreign(self) -> list[str]:
        """The runs in flight that are not our children (their liveness is checked now and then)."""
        return [run_id for run_id in self.in_flight if run_id not in self.launches]

    def forget(self, run_ids: list[str]) -> None:
        """Runs found dead (no live lease): no longer in flight; ``warmup recover`` closes them."""
        for run_id in run_ids:
            if self.in_flight.pop(run_id, None) is not None:
                self.say(f"run {run_id}: its process is gone without run_finished (warmup recover closes it)")

    def knows(self, run_id: str) -> bool:
        """A run this server started lately or one the log says is in flight (the "starting" page)."""
        return run_id in self.launches or run_id in self.recent or run_id in self.in_flight

    def running(self, task_id: str) -> str | None:
        """The id of a run of ``task_id`` in flight (ours or anyone's), or None."""
        for launch in self.launches.values():
            if launch.task_id == task_id and launch.alive:
                return launch.run_id
        for run_id, tid in self.in_flight.items():
            if tid == task_id:
                return run_id
        return None

    # -- starting ---------------------------------------------------------------------------
    async def start(self, entry: TaskEntry, origin: RunOrigin, *, accounts: tuple[str, ...] = (),
                    retry_failed: bool = False, wait_s: float = START_WAIT_S) -> Launch:
        """Spawn ``warmup run`` for ``entry`` and wait until its run has started.

        Raises ``StartFailed`` with the child's own one-line error when it exits first (a task that
        no longer loads, no browser, nothing to retry). After ``wait_s`` without either, the launch
        is returned anyway: the run page shows it once its first event is in the log.
        """
        if not self.accepting:
            raise StartFailed("the server is shutting down and starts no new run", None)
        run_id = new_run_id()
        out_dir = self.config.runs_output_dir
        await to_thread.run_sync(make_private_dir, out_dir)
        output = out_dir / f"{run_id}.log"
        cmd = [
            sys.executable, "-P", "-m", "cli", "run", os.fspath(entry.path.resolve()),
            "--log", _spec(self.config.log), "--db", os.fspath(self.config.db_path.resolve()),
            "--artifacts", os.fspath(self.config.artifacts.resolve()), "--no-project",
            "--trigger", origin.trigger, "--run-id", run_id,
        ]  # fmt: skip
        if origin.scheduled_for is not None:
            cmd += ["--scheduled-for", origin.scheduled_for]
        for account in accounts:
            cmd += ["--account", account]
        if retry_failed:
            cmd += ["--retry-failed", "last"]
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}  # the child needs ${env.*}, not our token
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=fd, stderr=fd, env=env, start_new_session=True,
            )
        finally:
            os.close(fd)
        launch = Launch(run_id, entry.id, origin, proc, output)
        self.launches[run_id] = launch
        if run_id in self.in_flight:  # (its run_started was followed already)
            launch.seen_started = True
            launch.started.set()
        waiter = asyncio.create_task(self._reap(launch), name=f"reap {run_id}")
        self._waiters.add(waiter)
        waiter.add_done_callback(self._waiters.discard)
        self.say(f"run {run_id}: started {entry.id} ({origin.trigger}), pid {proc.pid}")
        try:
            await asyncio.wait_for(launch.started.wait(), wait_s)
        except TimeoutError:
            return launch
        if not launch.seen_started and proc.returncode is not None:
            text = await to_thread.run_sync(_last_line, output)
            if text.startswith(f"run {run_id}: "):  # its summary line: it ran (and ended before we saw it)
                return launch
            raise StartFailed(text or f"warmup run exited with {proc.returncode} before the run started",
                              proc.returncode)
        return launch

    async def _reap(self, launch: Launch) -> None:
        code = await launch.proc.wait()
        launch.started.set()
        self.launches.pop(launch.run_id, None)
        self.recent.add(launch.run_id)
        self.in_flight.pop(launch.run_id, None)  # (its run_finished may still be on its way to us)
        if code in (0, 1, 130):  # warmup run's own exit codes: it appended run_finished
            self.say(f"run {launch.run_id}: its process exited with {code}")
        else:  # killed (-9), or it failed before its run started (2): a dead run if it had started
            self.say(f"run {launch.run_id}: its process exited with {code} (if its run had started, the next "
                     "warmup run or warmup recover closes it)")

    # -- cancelling -------------------------------------------------------------------------
    async def cancel(self, run_id: str) -> bool:
        """SIGINT the run's process: ours, or (after a restart, or a terminal's run) the lease holder's
        on this host. False when no live process of that run is here to signal."""
        launch = self.launches.get(run_id)
        if launch is not None and launch.alive:
            launch.proc.send_signal(signal.SIGINT)
            self.say(f"run {run_id}: cancelled (SIGINT to pid {launch.proc.pid})")
            return True
        liveness = liveness_for(self.log)
        holder = await to_thread.run_sync(liveness.run_holder, run_id)
        host, _ = host_and_pid()
        if holder is None or holder.run_id != run_id or holder.host != host or holder.pid <= 0:
            return False
        try:
            os.kill(holder.pid, signal.SIGINT)
        except ProcessLookupError:
            return False
        self.say(f"run {run_id}: cancelled (SIGINT to pid {holder.pid}, its lease's holder)")
        return True

    # -- stopping ---------------------------------------------------------------------------
    async def shutdown(self, grace_s: float) -> None:
        """Start nothing more; give runs in flight ``grace_s`` to finish, then SIGINT them and wait;
        a child still there ``KILL_AFTER_S`` later is killed (its run is then a dead run, which the
        next ``warmup run`` or ``warmup recover`` closes from the log)."""
        self.accepting = False
        alive = [launch for launch in self.launches.values() if launch.alive]
        if not alive:
            return
        self.say(f"waiting up to {grace_s:g} s for {len(alive)} run(s) in flight")
        await asyncio.wait([asyncio.ensure_future(x.proc.wait()) for x in alive], timeout=grace_s)
        alive = [launch for launch in alive if launch.alive]
        for launch in alive:
            self.say(f"run {launch.run_id}: interrupted (SIGINT) as the server stops")
            launch.proc.send_signal(signal.SIGINT)
        if alive:
            await asyncio.wait([asyncio.ensure_future(x.proc.wait()) for x in alive], timeout=KILL_AFTER_S)
        for launch in alive:
            if launch.alive:
                self.say(f"run {launch.run_id}: killed, {KILL_AFTER_S:g} s after its SIGINT")
                launch.proc.kill()
                await launch.proc.wait()


def _spec(log: Path | str) -> str:
    return os.fspath(log.resolve()) if isinstance(log, Path) else log


def _last_line(path: Path) -> str:
    """The last non-empty line a child wrote (its one-line error), without the ``warmup:`` prefix."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - OUTPUT_TAIL))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("warmup: ")[:500] if lines else ""
