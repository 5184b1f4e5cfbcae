"""``warmup recover``: dead runs (an unheld run lock) are closed from the log alone, once, and agree with replay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from conftest import REPO
from projection_support import dump, rows, warmup

from warmup.events.envelope import decode
from warmup.events.writer import EventWriter
from warmup.locks import RunLock, runs_dir


def dead_lock(log: Path, run_id: str, host: str | None = None) -> Path:
    """A run lock file nobody holds: what a SIGKILLed runner leaves behind."""
    lock = RunLock(log, run_id)
    lock.acquire()
    lock.release(remove=False)
    assert lock.path is not None
    if host is not None:
        info = orjson.loads(lock.path.read_bytes())
        lock.path.write_bytes(orjson.dumps({**info, "host": host}))
    return lock.path


def write_half_run(log: Path, run_id: str) -> None:
    """a1 completed, a2 running (attempt 1), a3 between attempts (failed 1, retrying), a4 never started."""
    with EventWriter(log) as w:
        w.emit("run_started", run_id=run_id, task_id="t", task_name="T", accounts=["a1", "a2", "a3", "a4"],
               steps=1, concurrency=3, host="h", pid=1)
        for a in ("a1", "a2", "a3"):
            w.emit("account_started", run_id=run_id, account_id=a, attempt=1)
        w.emit("step_finished", run_id=run_id, account_id="a1", index=0, action="goto", ok=True, duration_ms=1.0,
               error=None)
        w.emit("account_finished", run_id=run_id, account_id="a1", status="COMPLETED", error=None, attempt=1)
        w.emit("account_finished", run_id=run_id, account_id="a3", status="FAILED", error="boom", attempt=1,
               retrying=True)


def run_events(log: Path, run_id: str) -> list[dict]:
    return [e for e in (decode(x) for x in log.read_bytes().splitlines()) if e.get("run_id") == run_id]


def test_a_dead_run_is_closed_once_with_a_torn_tail_cut_and_the_tables_agree_with_replay(tmp_path: Path) -> None:
    log, db, db2 = tmp_path / "events.jsonl", tmp_path / "p.db", tmp_path / "r.db"
    write_half_run(log, "r1")
    lock = dead_lock(log, "r1")
    with open(log, "ab") as f:
        f.write(b'{"v":1,"id":"torn-by-a-kill","type":"step_fin')  # the runner died mid-line
    result = warmup("recover", "--log", log)
    assert result.returncode == 0, result.stderr
    assert "cut a torn last line" in result.stderr
    assert result.stdout.startswith("recovered dead run r1 (host ") and "1 CANCELLED, 2 INTERRUPTED" in result.stdout
    assert not lock.exists()
    raw = log.read_bytes()
    assert raw.endswith(b"\n") and b"torn-by-a-kill" not in raw
    events = run_events(log, "r1")
    closing = [(e["type"], e.get("account_id"), e["status"], e["attempt"] if "attempt" in e else None)
               for e in events if e.get("recovered")]
    assert closing == [
        ("account_finished", "a2", "INTERRUPTED", 1),
        ("account_finished", "a3", "INTERRUPTED", 1),
        ("account_finished", "a4", "CANCELLED", 0),
        ("run_finished", None, "INTERRUPTED", None),
    ]
    assert all(e["last_seen"] == events[6]["ts"] for e in events if e.get("recovered"))
    assert {e["task_id"] for e in events if e.get("recovered")} == {events[0]["task_id"]}
    assert "between attempts" in events[8]["error"] and "during attempt 1" in events[7]["error"]
    assert "died without finishing the run" in events[-1]["reason"]

    again = warmup("recover", "--log", log)
    assert again.returncode == 0 and again.stdout.strip() == f"no dead run in {log}"
    assert len(run_events(log, "r1")) == len(events)

    assert warmup("project", "--log", log, "--db", db).returncode == 0
    assert warmup("replay", "--log", log, "--db", db2).returncode == 0
    assert dump(db) == dump(db2)
    assert rows(db, "SELECT status FROM runs") == [{"status": "INTERRUPTED"}]
    statuses = {r["account_id"]: r["status"] for r in rows(db, "SELECT account_id, status FROM run_accounts")}
    assert statuses == {"a1": "COMPLETED", "a2": "INTERRUPTED", "a3": "INTERRUPTED", "a4": "CANCELLED"}
    assert rows(db, "SELECT count(*) AS n FROM rejected_events") == [{"n": 0}]
    status = warmup("status", "--db", db, "--json")
    assert status.returncode == 0 and "RUNNING" not in status.stdout


def test_a_live_run_and_another_hosts_run_are_left_alone_unless_forced(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    write_half_run(log, "alive")
    write_half_run(log, "far")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; from pathlib import Path; from warmup.locks import RunLock; "
         "RunLock(Path(sys.argv[1]), 'alive').acquire(); print('held', flush=True); time.sleep(60)", str(log)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        dead_lock(log, "far", host="some-other-host")
        size = log.stat().st_size
        result = warmup("recover", "--log", log)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == (
            "left run far alone: it was started on host some-other-host (pid "
            f"{orjson.loads((runs_dir(log) / 'far.lock').read_bytes())['pid']}), not this one; "  # type: ignore[operator]
            "use --force once you know its runner is gone"
        )
        assert log.stat().st_size == size
        forced = warmup("recover", "--log", log, "--force")
        assert forced.returncode == 0 and "recovered dead run far" in forced.stdout
        assert "alive" not in forced.stdout and run_events(log, "alive")[-1]["type"] != "run_finished"
        assert run_events(log, "far")[-1]["type"] == "run_finished"
    finally:
        holder.kill()
        holder.wait()


def test_two_recovers_at_once_close_each_dead_run_exactly_once(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    ids = [f"r{i:02d}" for i in range(20)]
    for run_id in ids:
        write_half_run(log, run_id)
        dead_lock(log, run_id)
    dead_lock(log, "never-started")  # died between taking its lock and writing run_started
    procs = [
        subprocess.Popen([sys.executable, "-m", "cli", "recover", "--log", str(log)], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    said = "".join(o for o, _ in outs)
    assert said.count("recovered dead run") == 20 and said.count("died before its run_started") == 1
    events = [decode(x) for x in log.read_bytes().splitlines()]
    finished = [e["run_id"] for e in events if e["type"] == "run_finished"]
    assert sorted(finished) == ids
    assert list(runs_dir(log).iterdir()) == []  # type: ignore[union-attr]


def test_recover_on_a_missing_log_is_one_line_exit_2(tmp_path: Path) -> None:
    result = warmup("recover", "--log", tmp_path / "nope.jsonl")
    assert result.returncode == 2 and result.stderr.startswith("warmup: no event log at ")
    assert result.stderr.count("\n") == 1


def test_no_log_at_the_default_path_is_nothing_to_recover_and_a_missing_explicit_log_is_refused(
    tmp_path: Path,
) -> None:
    from conftest import cli_env

    env = cli_env(PYTHONPATH=str(REPO))
    result = warmup("recover", cwd=tmp_path, env=env)  # a fresh folder: nothing was ever run here
    assert result.returncode == 0, result.stderr
    assert result.stdout == "nothing to recover: no event log at warmup-data/events.jsonl yet\n"
    assert result.stderr == ""
    assert not (tmp_path / "warmup-data").exists()  # nothing created
    missing = tmp_path / "typo.jsonl"
    for explicit in (["--log", str(missing)], []):
        extra = {} if explicit else {"WARMUP_LOG": str(missing)}
        result = warmup("recover", *explicit, cwd=tmp_path, env={**env, **extra})
        assert result.returncode == 2, result.stdout
        assert result.stderr == (f"warmup: no event log at {missing}: start one with `warmup run TASK.toml`, "
                                 "or point at yours with --log PATH (or WARMUP_LOG)\n")
        assert not missing.exists()
