"""``warmup run --resume / --retry-failed``: a new run of the accounts that did not complete, from the recorded task."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Workdir, cli_env, warmup

from warmup.events.writer import EventWriter
from warmup.locks import RunLock
from warmup.tasks import load_task

pytestmark = pytest.mark.browser

OUTCOMES = {"a1": "COMPLETED", "a2": "FAILED", "a3": "INTERRUPTED", "a4": "CANCELLED"}


def old_run(work: Workdir, site: str, run_id: str, *, finished: bool = True, literal: bool = False) -> None:
    """A past run of a real task, written to the log; then its task file is deleted."""
    extra = ', password = "hunter2-literal"' if literal else ""
    accounts = "".join(f'[[accounts]]\nid = "{a}"\nvars = {{ who = "{a}"{extra} }}\n' for a in OUTCOMES)
    path = work.task(f"""
id = "resumable"
concurrency = 2
{accounts}
[[steps]]
goto = "{site}/echo?who=${{account.who}}&greeting=${{env.WARMUP_TEST_GREETING}}"
[[steps]]
expect_text = {{ selector = "#q", text = "greeting=${{env.WARMUP_TEST_GREETING}}" }}
timeout_ms = 2000
""", "resumable.toml")
    record = load_task(path, env={"WARMUP_TEST_GREETING": "then"}).record()
    path.unlink()  # the resume must not need it
    with EventWriter(work.log) as w:
        w.emit("run_started", run_id=run_id, task_id="resumable", task_name="resumable", accounts=list(OUTCOMES),
               steps=2, concurrency=2, host="h", pid=1, task=record)
        for account, status in OUTCOMES.items():
            if status != "CANCELLED":
                w.emit("account_started", run_id=run_id, account_id=account, attempt=1)
            if finished:
                w.emit("account_finished", run_id=run_id, account_id=account, status=status,
                       error=None if status == "COMPLETED" else "x", attempt=0 if status == "CANCELLED" else 1)
        if finished:
            w.emit("run_finished", run_id=run_id, status="INTERRUPTED", reason="SIGINT received")


def new_runs(work: Workdir, before: int) -> list[dict]:
    return work.events()[before:]


def test_resume_runs_exactly_the_unfinished_accounts_with_the_recorded_task_and_env_read_now(
    site: str, work: Workdir
) -> None:
    old_run(work, site, "old-1")
    before = len(work.events())
    env = cli_env(WARMUP_TEST_GREETING="Sentinel-Now-4242")
    result = warmup("run", "--resume", "old-1", "--log", str(work.log), "--db", str(work.db),
                    "--artifacts", str(work.artifacts), env=env)
    assert result.returncode == 0, result.stderr
    events = new_runs(work, before)
    started = events[0]
    assert started["type"] == "run_started" and started["resumed_from"] == "old-1"
    assert started["accounts"] == ["a2", "a3", "a4"] and started["task_id"] == "resumable"
    done = {e["account_id"]: e["status"] for e in events if e["type"] == "account_finished"}
    assert done == {"a2": "COMPLETED", "a3": "COMPLETED", "a4": "COMPLETED"}  # the env value of now matched
    assert b"Sentinel-Now-4242" not in work.log.read_bytes()  # resolved again, and still a secret
    assert "Sentinel-Now-4242" not in result.stdout + result.stderr
    # the tables (projector child) link the runs
    from projection_support import rows

    run = rows(work.db, "SELECT resumed_from, status, accounts_total FROM runs WHERE id = ?", started["run_id"])
    assert run == [{"resumed_from": "old-1", "status": "COMPLETED", "accounts_total": 3}]

    # that new run has nothing left to resume: said, exit 0, nothing appended
    size = work.log.stat().st_size
    again = warmup("run", "--resume", started["run_id"], "--log", str(work.log), "--no-project", env=env)
    assert again.returncode == 0, again.stderr
    nothing = "nothing to resume: no failed, interrupted or cancelled account"
    assert again.stdout.strip() == f"run {started['run_id']}: {nothing}"
    assert work.log.stat().st_size == size


def test_retry_failed_takes_only_the_failed_accounts(site: str, work: Workdir) -> None:
    old_run(work, site, "old-2")
    before = len(work.events())
    result = warmup("run", "--retry-failed", "old-2", "--log", str(work.log), "--no-project",
                    "--artifacts", str(work.artifacts), env=cli_env(WARMUP_TEST_GREETING="hi"))
    assert result.returncode == 0, result.stderr
    started = new_runs(work, before)[0]
    assert started["accounts"] == ["a2"] and started["resumed_from"] == "old-2"


def test_a_dead_run_is_recovered_then_resumed(site: str, work: Workdir) -> None:
    old_run(work, site, "old-3", finished=False)
    lock = RunLock(work.log, "old-3")
    lock.acquire()
    lock.release(remove=False)  # its runner was SIGKILLed
    before = len(work.events())
    result = warmup("run", "--resume", "old-3", "--log", str(work.log), "--no-project",
                    "--artifacts", str(work.artifacts), env=cli_env(WARMUP_TEST_GREETING="hi"))
    assert result.returncode == 0, result.stderr
    assert "warmup: recovered dead run old-3" in result.stderr
    events = new_runs(work, before)
    assert [e["type"] for e in events[:5]] == ["account_finished"] * 4 + ["run_finished"]
    started = next(e for e in events if e["type"] == "run_started")
    assert started["accounts"] == ["a1", "a2", "a3", "a4"]  # a1-a3 were running: INTERRUPTED; a4 CANCELLED
    assert started["resumed_from"] == "old-3"


def test_refusals_are_one_line_exit_2(site: str, work: Workdir) -> None:
    old_run(work, site, "old-4")
    env = cli_env(WARMUP_TEST_GREETING="hi")
    base = ("--log", str(work.log), "--no-project")

    def refused(*args: str) -> str:
        result = warmup("run", *args, *base, env=env)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        return result.stderr

    assert f"--resume nope: no run 'nope' in {work.log}: see `warmup runs`" in refused("--resume", "nope")
    task = work.task('[[accounts]]\nid = "a"\n[[steps]]\nwait_ms = 1\n')
    assert "run old-4 is a run of task 'resumable', not of task 'task'" in refused(str(task), "--resume", "old-4")
    assert "missing TASK_FILE" in refused()
    assert "not both" in refused("--resume", "old-4", "--retry-failed", "old-4")
    lock = RunLock(work.log, "old-4")
    lock.acquire()  # held: as if its runner were still going
    try:
        assert "that run is still going (run old-4 on host" in refused("--resume", "old-4")
    finally:
        lock.release(remove=True)
    missing_env = warmup("run", "--resume", "old-4", *base, env=cli_env())
    assert missing_env.returncode == 2 and "WARMUP_TEST_GREETING is not set" in missing_env.stderr
    assert "is not a run id" in refused("--resume", "x" * 300)
    assert "is not a run id" in refused("--resume", "../accounts/a1")


def test_a_run_is_resumed_once_then_its_resume_is(site: str, work: Workdir) -> None:
    old_run(work, site, "old-6")
    env = cli_env(WARMUP_TEST_GREETING="hi")
    base = ("--log", str(work.log), "--no-project", "--artifacts", str(work.artifacts))
    before = len(work.events())
    assert warmup("run", "--resume", "old-6", *base, env=env).returncode == 0, "the first resume runs"
    resumed_by = new_runs(work, before)[0]["run_id"]
    again = warmup("run", "--resume", "old-6", *base, env=env)
    assert again.returncode == 2 and f"run {resumed_by} already resumed it; resume {resumed_by}" in again.stderr


def test_a_literal_credential_recorded_as_stars_cannot_be_resumed(site: str, work: Workdir) -> None:
    old_run(work, site, "old-5", literal=True)
    assert b"hunter2-literal" not in work.log.read_bytes()
    result = warmup("run", "--resume", "old-5", "--log", str(work.log), "--no-project",
                    env=cli_env(WARMUP_TEST_GREETING="hi"))
    assert result.returncode == 2 and "variable 'password' was a literal credential" in result.stderr


def test_resume_works_from_another_folder(site: str, work: Workdir, tmp_path: Path, monkeypatch) -> None:
    # the recorded folder (not the cwd) anchors relative paths: a storage_state relative to the task file
    path = work.task(f"""
storage_state = "states/${{account.id}}.json"
[[accounts]]
id = "s1"
[[steps]]
goto = "{site}/signin?user=s1"
""", "stateful.toml")
    record = load_task(path).record()
    assert record["folder"] == str(work.root.resolve())
    with EventWriter(work.log) as w:
        w.emit("run_started", run_id="old-6", task_id="stateful", task_name="s", accounts=["s1"], steps=1,
               concurrency=1, host="h", pid=1, task={**record, "source": "stateful.toml"})
        w.emit("account_finished", run_id="old-6", account_id="s1", status="CANCELLED", error="x", attempt=0)
        w.emit("run_finished", run_id="old-6", status="INTERRUPTED")
    result = warmup("run", "--resume", "old-6", "--log", str(work.log), "--no-project")
    assert result.returncode == 0, result.stderr
    assert (work.root / "states" / "s1.json").exists()
