"""Errors meant for people: the CLI prints their message on one line and exits with their code.

Raise ``UsageError`` for bad input (task file, arguments, a missing file): exit 2. Raise
``WarmupError`` with another ``exit_code`` for a refusal that is not the user's typing mistake,
such as a log that no longer matches the database's checkpoint (exit 1).
"""

from __future__ import annotations


class WarmupError(Exception):
    """An error with a message for people and the exit code the CLI should use."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(WarmupError):
    """Bad input: a task file, a log path, an argument. Exit 2."""

    exit_code = 2


def no_log(log_path: object) -> str:
    """The one wording for "the event log is not there", whichever command finds it missing."""
    return (
        f"no event log at {log_path}: start one with `warmup run TASK.toml`, "
        "or point at yours with --log PATH (or WARMUP_LOG)"
    )


def no_run(run_id: str, where: object) -> str:
    """The one wording for "no run with that id (or prefix)"; ``where`` is the log or database searched."""
    return f"no run {run_id!r} in {where}: see `warmup runs` or `warmup tail --type run_started`"


# How `warmup project` refuses a database built by a partial replay (projector._check_still_ours);
# the runner, which must not import the projector, looks for it in its projector child's stderr.
SCOPED_REFUSAL = "cannot be extended"
