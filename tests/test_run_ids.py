"""Run ids as people type them: a whole id, a unique prefix, or ``last``, the same in every command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, cli_env
from projection_support import rows, run_lines, warmup

from warmup.errors import UsageError
from warmup.run_ids import resolve_run_id, runs_in_log

FIRST, SECOND = "20261129T070000-1a2b3c", "20261129T080000-4d5e6f"


@pytest.fixture()
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    """Two finished runs (the second has a FAILED account), projected."""
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    lines = run_lines(FIRST, ["alice", "bob"], {})
    second = run_lines(SECOND, ["alice"], {"alice": "FAILED"})
    lines += [x.replace(b"2026-11-29T07:", b"2026-11-29T08:") for x in second]
    log.write_bytes(b"".join(lines))
    assert warmup("project", "--log", log, "--db", db).returncode == 0
    return log, db


def test_the_resolver_takes_a_whole_id_a_unique_prefix_or_last_and_never_guesses() -> None:
    known = ["r1", "r10", "r2"]
    assert resolve_run_id("r1", known, "L") == "r1"  # whole, though also a prefix of r10
    assert resolve_run_id("r10", known, "L") == "r10"
    assert resolve_run_id("r2", known, "L") == "r2"
    assert resolve_run_id("last", known, "L") == "r2"
    with pytest.raises(UsageError, match=r"'r' matches 3 runs in L \(r1, r10, r2\): give more of the run id"):
        resolve_run_id("r", known, "L")
    with pytest.raises(UsageError, match=r"^no run 'x' in L: see `warmup runs`"):
        resolve_run_id("x", known, "L")
    with pytest.raises(UsageError, match=r"no run in L yet, so 'last' names none"):
        resolve_run_id("last", [], "L")
    with pytest.raises(UsageError, match="no run '' in L"):
        resolve_run_id("", known, "L")


def test_runs_in_log_reads_run_started_lines_only_in_log_order(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    log, _ = two_runs
    with open(log, "ab") as f:
        f.write(b'{"v":1,"id":"torn","type":"run_started","run_id":"2026')  # a torn tail: still being written
    assert runs_in_log(log) == [FIRST, SECOND]
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert runs_in_log(empty) == []
    with pytest.raises(UsageError, match="^no event log at "):
        runs_in_log(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("read_bytes", [7, 64, 1000])
def test_runs_in_log_finds_lines_cut_by_its_reads(two_runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                                   read_bytes: int) -> None:
    """The log is read a block at a time: a run_started line cut by a block's end is still found, once."""
    import warmup.run_ids

    log, _ = two_runs
    monkeypatch.setattr(warmup.run_ids, "READ_BYTES", read_bytes)
    assert runs_in_log(log) == [FIRST, SECOND]


def test_show_report_replay_and_resume_take_a_prefix_and_last(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    log, db = two_runs
    shown = json.loads(warmup("show", "20261129T07", "--db", db, "--json").stdout)
    assert shown["run"]["id"] == FIRST
    assert json.loads(warmup("show", "last", "--db", db, "--json").stdout)["run"]["id"] == SECOND
    ambiguous = warmup("show", "2026", "--db", db)
    assert ambiguous.returncode == 2 and ambiguous.stderr == (
        f"warmup: '2026' matches 2 runs in {db} ({FIRST}, {SECOND}): give more of the run id\n")

    env = cli_env(PYTHONPATH=str(REPO))
    report = warmup("report", "20261129T08", "--log", log, "--db", db, cwd=tmp_path, env=env)
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith(f"wrote report-{SECOND}.html (") and f"run {SECOND} FAILED" in report.stdout
    assert (tmp_path / f"report-{SECOND}.html").stat().st_size > 1000  # the default -o: here, named after the run
    last = warmup("report", "last", "--log", log, "--db", db, "-o", tmp_path / "r.html")
    assert last.returncode == 0 and (tmp_path / "r.html").exists(), last.stderr

    one = tmp_path / "one.db"
    assert warmup("replay", "--log", log, "--db", one, "--run", "20261129T07").returncode == 0
    assert [r["id"] for r in rows(one, "SELECT id FROM runs")] == [FIRST]
    assert json.loads(rows(one, "SELECT scope FROM warmup_checkpoints")[0]["scope"])["runs"] == [FIRST]

    size = log.stat().st_size
    result = warmup("run", "--resume", "20261129T07", "--log", log, "--no-project")  # all of FIRST completed
    assert result.returncode == 0 and result.stdout.startswith(f"run {FIRST}: nothing to resume"), result.stderr
    retry = warmup("run", "--retry-failed", "last", "--log", log, "--no-project",
                   "--browser-path", tmp_path / "no-chromium")
    assert retry.returncode == 2 and "no-chromium" in retry.stderr  # `last` resolved, then stopped at the browser
    refused = warmup("run", "--resume", "2026", "--log", log, "--no-project")
    assert refused.returncode == 2 and refused.stderr.startswith("warmup: --resume 2026: '2026' matches 2 runs")
    missing = warmup("run", "--resume", "nope", "--log", log, "--no-project")
    assert missing.returncode == 2 and missing.stderr == (
        f"warmup: --resume nope: no run 'nope' in {log}: see `warmup runs` or `warmup tail --type run_started`\n")
    assert log.stat().st_size == size  # refusals and nothing-to-do append nothing


def test_every_command_words_a_missing_log_and_an_unknown_run_the_same(tmp_path: Path) -> None:
    log, db = tmp_path / "nope.jsonl", tmp_path / "nope.db"
    want = (f"warmup: no event log at {log}: start one with `warmup run TASK.toml`, "
            "or point at yours with --log PATH (or WARMUP_LOG)")
    for args in (["recover"], ["project"], ["replay"], ["tail"], ["report", "x"], ["run", "--resume", "x"],
                 ["replay", "--run", "x"]):
        result = warmup(*args, "--log", log, "--db", db) if args[0] not in ("recover", "tail") else warmup(
            *args, "--log", log)
        assert result.returncode == 2, (args, result.stderr)
        assert want.removeprefix("warmup: ") in result.stderr and result.stderr.count("\n") == 1, (args, result.stderr)
        assert not log.exists()


def test_the_resolver_and_completion_import_no_database_module() -> None:
    code = ("import sys, warmup.run_ids, warmup.completion, warmup.runner.command, cli; "
            "bad = [m for m in ('sqlite3', 'sqlite_utils', '_sqlite3') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
