"""``warmup recover``: close the dead runs of a log, one line each on stdout; exit 0.

Reads and appends to the log only (like the runner, it never opens the database).
"""

from __future__ import annotations

import signal
from pathlib import Path

from warmup.errors import UsageError, WarmupError
from warmup.events.writer import LogWriteError
from warmup.recover import Recovered, Skipped, recover_dead_runs


def run_recover(log_path: Path, *, force: bool) -> int:
    if not log_path.exists():
        raise UsageError(f"no event log at {log_path} (give --log or set WARMUP_LOG)")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def say(result: Recovered | Skipped) -> None:
        print(result.describe(), flush=True)

    try:
        report = recover_dead_runs(log_path, force=force, on_result=say)
    except LogWriteError as exc:
        raise WarmupError(exc.strerror or str(exc), exit_code=1) from None
    if not report.recovered and not report.skipped:
        print(f"no dead run in {log_path}", flush=True)
    return 0
