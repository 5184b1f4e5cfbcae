"""``warmup recover``: close the dead runs of a log, one line each on stdout; exit 0.

Reads and appends to the log only (like the runner, it never opens the database).

No log at the default path (``warmup-data/events.jsonl``, nothing run here yet, or a run killed
before its first event) means nothing to recover: one line saying so, exit 0. A log named on
purpose (``--log`` or ``WARMUP_LOG``) that is not there is more likely a typo: the one "no event
log" message, exit 2. Either way nothing is created.
"""

from __future__ import annotations

import signal
from pathlib import Path

from warmup.errors import UsageError, WarmupError, no_log
from warmup.events.logfile import check_log_file
from warmup.log import FileLog, as_log
from warmup.recover import Recovered, Skipped, recover_dead_runs


def run_recover(log_path: Path | str, *, force: bool, explicit: bool = True) -> int:
    """Close the dead runs of ``log_path``; ``explicit``: the path was given, not the default."""
    log = as_log(log_path)
    if isinstance(log, FileLog):
        check_log_file(log.path)  # a FIFO, a folder: refused at once, never waited on
    if not log.exists():
        if explicit:
            raise UsageError(no_log(log.name))
        print(f"nothing to recover: no event log at {log.name} yet", flush=True)
        return 0
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def say(result: Recovered | Skipped) -> None:
        print(result.describe(), flush=True)

    try:
        report = recover_dead_runs(log, force=force, on_result=say)
    except OSError as exc:  # the log could not be written (LogWriteError), the leases not read (LeaseError)
        raise WarmupError(exc.strerror or str(exc), exit_code=1) from None
    if not report.recovered and not report.skipped:
        print(f"no dead run in {log.name}", flush=True)
    return 0
