"""``warmup report RUN_ID [-o report.html]``: gather the run, render it, write the file whole.

RUN_ID may be a whole id, a unique prefix or ``last``, resolved among the log's runs
(``warmup.run_ids``, as every command that takes a run id). Without ``-o`` the report goes to
``report-<run id>.html`` in the current folder.

The file is written next to its destination and renamed into place, so a reader (or a browser
reloading it) never sees half a report. It is private to its owner (mode 0600), like the log and
the screenshots it inlines: a page's screenshot may show what only that account should see.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from warmup.errors import UsageError, WarmupError
from warmup.log import FileLog, as_log
from warmup.report.data import gather
from warmup.report.render import render
from warmup.run_ids import resolve_from_log


def default_output(run_id: str) -> Path:
    """Where a report goes without ``-o``: ``report-<run id>.html`` in the current folder."""
    return Path(f"report-{run_id}.html")


def write_whole(output: Path, text: str) -> int:
    """Write ``text`` to ``output`` atomically; return the bytes written."""
    data = text.encode("utf-8")
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"-o {output}: no folder {folder}; create it first")
    if output.is_dir():
        raise UsageError(f"-o {output}: is a folder; give a file name such as report.html")
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, output)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise WarmupError(f"cannot write {output}: {exc.strerror or exc}", exit_code=1) from None
    return len(data)


def refuse_to_overwrite_inputs(output: Path, **inputs: Path) -> None:
    """``-o`` must not name the log or the database: the report would replace them."""
    if not output.exists():
        return
    for option, path in inputs.items():
        if path.exists() and os.path.samefile(output, path):
            raise UsageError(f"-o {output} is the {option} itself; write the report to another file")


def run_report(run_id: str, *, log_path: Path | str, db_path: Path, artifacts: Path, output: Path | None) -> int:
    log = as_log(log_path)
    run_id = resolve_from_log(log, run_id)
    if output is None:
        output = default_output(run_id)
    inputs = {"log": log.path} if isinstance(log, FileLog) else {}
    refuse_to_overwrite_inputs(Path(output), **inputs, database=Path(db_path))
    report = gather(run_id, db_path=Path(db_path), log_path=log, artifacts_dir=Path(artifacts))
    size = write_whole(Path(output), render(report, log_name=log.name))
    failures = len(report.failures())
    missing = sum(1 for s in report.shots if s.data_uri is None)
    line = (
        f"wrote {output} ({size / 1024:.0f} KB): run {run_id} {report.run.get('status')}, "
        f"{len(report.lanes)} accounts, {failures} failure(s), {len(report.shots) - missing} screenshot(s)"
    )
    if missing:
        line += f", {missing} screenshot(s) missing (noted in the report)"
    if report.traces:
        line += f", {len(report.traces)} trace(s) linked (open one with `python -m playwright show-trace FILE`)"
    print(line)
    return 0
