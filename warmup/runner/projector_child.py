"""``warmup project --follow`` as a separate process beside a run, so the tables fill live.

The child runs in its own session (``start_new_session=True``): a Ctrl-C typed in the terminal
reaches only the runner, which decides when the projector stops. Stopping is a SIGTERM after the
run's last event is on disk; the projector then applies everything already in the log and exits 0.
The runner process itself never touches the database: only this child does.

If the runner dies without stopping it (SIGKILL, OOM), the child must not follow the log forever:
on Linux it asks the kernel for SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``), so it
drains what is in the log and exits 0 like after a normal stop. (If the runner died before the
``prctl``, the child sees a new parent pid and stops itself the same way.)

The child's stderr goes to an unnamed temporary file, not the terminal: it would print into the
progress bar. When the child fails, ``stop`` passes on its last lines and a hint naming the command
that works: ``warmup project`` refuses a database built by a partial replay (``--until``/``--run``),
so for that one the hint is ``warmup replay`` (without a scope) on the same log and database.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

from warmup.errors import SCOPED_REFUSAL
from warmup.safe_text import escape

STOP_TIMEOUT_S = 120.0
PR_SET_PDEATHSIG = 1
STDERR_KEPT = 2000  # characters of the child's stderr passed on when it fails


def _die_with_parent(parent_pid: int) -> None:
    """Run in the child between fork and exec: SIGTERM me when the runner dies (Linux only)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: the runner's own stop/kill paths are all there is
    if os.getppid() != parent_pid:  # it died before the prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def projection_args(specs: tuple[str, ...] | list[str], targets: tuple[str, ...] | list[str]) -> list[str]:
    """``--projection``/``--target`` as the child's command line takes them (passed on, never imported here)."""
    args: list[str] = []
    for spec in specs:
        args += ["--projection", spec]
    for target in targets:
        args += ["--target", os.fspath(target)]
    return args


def check_projections(args: list[str]) -> str | None:
    """Ask a projector process whether the ``--projection`` values load: None, or its one-line refusal.

    The user's module is imported over there, never in the runner (which must not load a database
    module), and before any browser starts, so a typo costs a second, not a run.
    """
    done = subprocess.run(
        [sys.executable, "-P", "-m", "cli", "project", "--check", *args],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=STOP_TIMEOUT_S,
    )
    if done.returncode == 0:
        return None
    text = done.stderr.decode("utf-8", "replace")
    said = [escape(x.removeprefix("warmup: ")) for x in text.splitlines() if x.strip()]
    return said[-1] if said else f"checking --projection failed (exit {done.returncode})"


class ProjectorChild:
    def __init__(self, log_path: Path | str, db_path: Path, extra_args: list[str] | None = None) -> None:
        self.log_path = log_path
        self.db_path = db_path
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr: IO[bytes] | None = None

    def start(self) -> None:
        # -P: never import a cli.py that happens to be in the user's working directory.
        cmd = [
            sys.executable, "-P", "-m", "cli", "project", "--follow", "--quiet",
            "--log", os.fspath(self.log_path), "--db", os.fspath(self.db_path), *self.extra_args,
        ]  # fmt: skip
        parent = os.getpid()
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stderr=self.stderr, start_new_session=True,
            preexec_fn=lambda: _die_with_parent(parent),
        )

    def exited_early(self) -> int | None:
        """The child's exit code if it already stopped on its own, else None."""
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> str | None:
        """SIGTERM and wait for the drain; returns a one-line problem for the user, or None."""
        proc = self.proc
        if proc is None:
            return None
        early = proc.poll()
        if early is not None:
            return self._failed(f"the projector stopped early (exit {early})")
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return self._failed(f"the projector did not stop within {timeout_s:g} s and was killed")
        except KeyboardInterrupt:
            # It already has its SIGTERM: it finishes applying the log and exits on its own
            # (it runs in its own session, so it does not die with us; its checkpoint is safe).
            raise
        if code != 0:
            return self._failed(f"the projector exited with {code}")
        return None

    def _failed(self, what: str) -> str:
        """``what`` happened, the child's own last words, and the command that fills the tables now."""
        said = self._said()
        log, db = os.fspath(self.log_path), os.fspath(self.db_path)
        if SCOPED_REFUSAL in said:  # its own message names `warmup replay` without --db: say it whole here
            return (f"{what}: {db} holds a partial replay (`warmup replay --until/--run`), which `warmup project` "
                    f"does not extend; run `warmup replay --log {log} --db {db}` to rebuild its full tables")
        extra = "".join(f" {x}" for x in self.extra_args)
        hint = f"run `warmup project --log {log} --db {db}{extra}` to fill the tables"
        lines = [escape(line.removeprefix("warmup: ")) for line in said.splitlines() if line.strip()]
        return f"{what}: {lines[-1]}; {hint}" if lines else f"{what}; {hint}"

    def _said(self) -> str:
        if self.stderr is None:
            return ""
        try:
            self.stderr.seek(0)
            return self.stderr.read()[-STDERR_KEPT:].decode("utf-8", errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
