"""``warmup.contrib.django``: a real Django project (tests/django_project/) and ``manage.py`` in subprocesses.

The project's ``uploader`` app has the original app's models (Account, WarmupTask, WarmupTaskAccount)
and the docs/django.md recipe as its ``warmup_projections.py``. Every ``manage.py`` runs with
``DJANGO_ALLOW_ASYNC_UNSAFE`` removed from its environment: the projections never need it. Each
test has its own SQLite database (``$WARMUP_TEST_DJANGO_DB`` in tmp_path).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Workdir, cli_env, warmup
from projection_support import line

pytest.importorskip("django")

PROJECT = REPO / "tests" / "django_project"
pytestmark = pytest.mark.timeout(240)


def django_env(db: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``manage.py``: no WARMUP_* (cli_env), no DJANGO_ALLOW_ASYNC_UNSAFE, this repo first."""
    env = cli_env(**extra)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["WARMUP_TEST_DJANGO_DB"] = str(db)
    assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in env
    return env


def manage(db: Path, *args: str | Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """``python manage.py ARGS`` in the test project, as a user runs it; output captured."""
    return subprocess.run([sys.executable, "manage.py", *map(str, args)], cwd=PROJECT, env=django_env(db, **env),
                          capture_output=True, text=True, timeout=timeout)


def migrated(tmp_path: Path, name: str = "django.sqlite3") -> Path:
    db = tmp_path / name
    result = manage(db, "migrate", "-v0")
    assert result.returncode == 0, result.stderr
    return db


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


# -- without the projector: the app, discovery, and the target methods --------------------------


def test_migrate_creates_the_checkpoint_table_and_the_apps_models(tmp_path: Path) -> None:
    db = migrated(tmp_path)
    tables = {t for (t,) in query(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"warmup_django_checkpoint", "uploader_account", "uploader_warmuptask",
            "uploader_warmuptaskaccount"} <= tables
    columns = [c[1] for c in query(db, "PRAGMA table_info(warmup_django_checkpoint)")]
    assert columns == ["name", "version", "position", "fingerprint", "log", "events_applied", "events_rejected",
                       "last_event_id", "last_event_ts", "scope", "spec"]
    # the app's migrations are complete: nothing left for makemigrations to write
    check = manage(db, "makemigrations", "--check", "--dry-run", "warmup_django", "uploader")
    assert check.returncode == 0, check.stdout + check.stderr


def test_importing_the_package_needs_no_settings() -> None:
    probe = ("import sys, warmup.contrib.django as d; "
             "print(d.DjangoProjection.using, sorted(m for m in sys.modules if m.split('.')[0] == 'django'))")
    env = {k: v for k, v in cli_env().items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "default []"


def test_discovery_finds_the_apps_projections_and_refuses_unknown_or_duplicate_names(tmp_path: Path) -> None:
    db = migrated(tmp_path)
    found = manage(db, "shell", "-v0", "-c",
                   "from warmup.contrib.django.discovery import discover_projections as d; "
                   "print([c.name for c in d()])")
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().splitlines()[-1] == "['uploader_warmup_tasks', 'uploader_step_stats']"

    unknown = manage(db, "warmup_project", "--projection", "nope", "--log", tmp_path / "events.jsonl")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "CommandError: no projection named 'nope'; the projections found in the installed apps' "
        "warmup_projections.py are: uploader_step_stats, uploader_warmup_tasks"]

    dupes = manage(db, "warmup_project", "--log", tmp_path / "events.jsonl", WARMUP_TEST_DJANGO_APPS="dupes")
    assert dupes.returncode == 2
    assert dupes.stderr.strip().splitlines() == [
        "CommandError: two projections are named 'uploader_step_stats': uploader.warmup_projections.StepStats "
        "and dupes.warmup_projections.Again; a name keys a checkpoint, so each must be unique"]


def exercise(db: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "exercise.py", *args], cwd=PROJECT, env=django_env(db, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_checkpoint_commits_with_the_rows_rolls_back_with_them_and_reset_clears(tmp_path: Path) -> None:
    db = migrated(tmp_path)
    out, err = exercise(db, "checkpoint").communicate(timeout=120)
    assert err == "" or "Traceback" not in err, err
    seen = json.loads(out)
    assert seen["first"] == "None"
    assert seen["after_rollback"] == {  # the failed batch's row and checkpoint are both gone
        "name": "uploader_step_stats", "version": 1, "position": 2**40, "fingerprint": "f", "log": "/l",
        "events_applied": 3, "events_rejected": 0, "last_event_id": "e3", "last_event_ts": "t3",
        "scope": None, "spec": None}
    assert seen["stats"] == ["goto"]
    assert seen["after_reset"] == "(None, 0)"
    assert seen["no_clear"].startswith("projection 'no_clear' cannot be rebuilt: define clear() in NoClear")
    assert seen["target"] == f"Django database 'default' ({db})"


def test_two_processes_on_one_sqlite_database_take_turns(tmp_path: Path) -> None:
    """Each batch's first statement takes the write lock: with a busy timeout of 10 ms (so that most
    waits end in "database is locked" and a retry), two writers of 100 batches both finish, and no
    batch is lost. Without the lock taken first, one of them fails on a read-to-write upgrade."""
    db = migrated(tmp_path)
    writers = [exercise(db, "turns", "100", WARMUP_TEST_DJANGO_TIMEOUT="0.01") for _ in range(2)]
    for w in writers:
        out, err = w.communicate(timeout=180)
        assert w.returncode == 0, err
        assert json.loads(out) == {"done": 100}
    assert query(db, "SELECT ok FROM uploader_stepstat WHERE action = 'turns'") == [(200,)]
    assert query(db, "SELECT events_applied FROM warmup_django_checkpoint") == [(200,)]


# -- with the projector: manage.py warmup_project over real logs --------------------------------

ACCOUNTS = [f"acc{i}" for i in range(8)]
T0 = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)


class LogBuilder:
    """Lines of whole runs (retries, failures), each event 1 ms after the previous one."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.runs = 0
        self.finished: list[bytes] = []  # account_finished lines, to duplicate

    def ts(self) -> str:
        self.n += 1
        return (T0 + timedelta(milliseconds=self.n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def runs_lines(self, n_runs: int) -> list[bytes]:
        out: list[bytes] = []
        for _ in range(n_runs):
            self.runs += 1
            run_id, rng = f"run{self.runs:04d}", self.rng
            accounts = rng.sample(ACCOUNTS, 3)
            task_id = rng.choice(["morning", "evening"])
            out.append(line("run_started", self.ts(), run_id=run_id, task_id=task_id, task_name=task_id.title(),
                            accounts=accounts, steps=2, concurrency=2, host="test", pid=1))
            all_ok = True
            for a in accounts:
                attempts = rng.choice([1, 1, 2])
                for attempt in range(1, attempts + 1):
                    last = attempt == attempts
                    ok = last and rng.random() < 0.7
                    out.append(line("account_started", self.ts(), run_id=run_id, account_id=a, attempt=attempt))
                    out.append(line("step_finished", self.ts(), run_id=run_id, account_id=a, index=0,
                                    action="goto", ok=True, duration_ms=1.0, error=None, attempt=attempt))
                    out.append(line("step_finished", self.ts(), run_id=run_id, account_id=a, index=1,
                                    action="click", ok=ok, duration_ms=1.0, error=None if ok else "no #go",
                                    attempt=attempt))
                    out.append(line("account_finished", self.ts(), run_id=run_id, account_id=a,
                                    status="COMPLETED" if ok else "FAILED", error=None if ok else "step 2 failed",
                                    attempt=attempt, retrying=not last))
                    self.finished.append(out[-1])
                all_ok = all_ok and ok
            if rng.random() < 0.3:  # a line written twice (a retried append): rejected, never counted twice
                out.append(rng.choice(self.finished))
            out.append(line("run_finished", self.ts(), run_id=run_id, status="COMPLETED" if all_ok else "FAILED"))
        return out  # (it ends with an event the projections take: their checkpoints reach its end)


def append(log: Path, lines: list[bytes]) -> None:
    with open(log, "ab") as f:
        f.write(b"".join(data if data.endswith(b"\n") else data + b"\n" for data in lines))


def db_time(ts: str) -> str:
    """How Django stores an aware datetime in SQLite: UTC, a space, no zone (no fraction when it is 0)."""
    return str(datetime.fromisoformat(ts).replace(tzinfo=None))


def expected(log: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What the recipe's models must hold for ``log``, folded here independently (duplicates skipped)."""
    seen: set[str] = set()
    accounts: dict[str, list[Any]] = {}
    tasks: dict[str, list[Any]] = {}
    rows: dict[tuple[str, str], list[Any]] = {}
    stats: dict[str, list[int]] = {}
    for raw in log.read_bytes().splitlines():
        e = json.loads(raw)
        if e["id"] in seen:
            continue
        seen.add(e["id"])
        kind, ts = e["type"], e["ts"]
        if kind == "run_started":
            tasks[e["run_id"]] = [e["task_id"], e["task_name"], "RUNNING", db_time(ts), None, len(e["accounts"]), 0, 0]
            for a in e["accounts"]:
                accounts.setdefault(a, [0, 0, None])
                rows[(e["run_id"], a)] = ["PENDING", 0, None, None, ""]
        elif kind == "account_started":
            row = rows[(e["run_id"], e["account_id"])]
            row[0], row[1], row[2] = "RUNNING", e["attempt"], row[2] or db_time(ts)
            row[4] += f"{ts} attempt {e['attempt']} started\n"
        elif kind == "step_finished":
            stat = stats.setdefault(e["action"], [0, 0])
            stat[0 if e["ok"] else 1] += 1
            if not e["ok"]:
                rows[(e["run_id"], e["account_id"])][4] += (
                    f"{ts} step {e['index'] + 1} ({e['action']}) failed: {e['error']}\n")
        elif kind == "account_finished":
            row = rows[(e["run_id"], e["account_id"])]
            if e.get("retrying"):
                row[4] += f"{ts} attempt {e['attempt']} failed, retrying: {e['error']}\n"
                continue
            row[0], row[3] = e["status"], db_time(ts)
            row[4] += f"{ts} {e['status']}" + (f": {e['error']}" if e["error"] else "") + "\n"
            task = tasks[e["run_id"]]
            if e["status"] == "COMPLETED":
                task[6] += 1
                account = accounts[e["account_id"]]
                account[0], account[1], account[2] = 1, account[1] + 1, db_time(ts)
            elif e["status"] == "FAILED":
                task[7] += 1
        elif kind == "run_finished":
            tasks[e["run_id"]][2], tasks[e["run_id"]][4] = e["status"], db_time(ts)
    return {
        "accounts": sorted((a, *v) for a, v in accounts.items()),
        "tasks": sorted((r, *v) for r, v in tasks.items()),
        "task_accounts": sorted((*k, *v) for k, v in rows.items()),
        "step_stats": sorted((a, *v) for a, v in stats.items()),
    }


DUMP = {
    "accounts": "SELECT username, is_warmed, warm_count, last_warmed_at FROM uploader_account",
    "tasks": "SELECT run_id, task_id, name, status, started_at, completed_at, accounts_total, accounts_completed, "
             "accounts_failed FROM uploader_warmuptask",
    "task_accounts": "SELECT t.run_id, a.username, ta.status, ta.attempt, ta.started_at, ta.completed_at, ta.log "
                     "FROM uploader_warmuptaskaccount ta JOIN uploader_warmuptask t ON t.id = ta.task_id "
                     "JOIN uploader_account a ON a.id = ta.account_id",
    "step_stats": "SELECT action, ok, failed FROM uploader_stepstat",
}


def models(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The recipe's models, by natural keys (ids differ between a rebuild and the first build)."""
    return {name: sorted(query(db, sql)) for name, sql in DUMP.items()}


def checkpoints(db: Path) -> list[tuple[Any, ...]]:
    return query(db, "SELECT name, version, position, events_applied, last_event_id, spec "
                     "FROM warmup_django_checkpoint ORDER BY name")


def project(db: Path, log: Path, core: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return manage(db, "warmup_project", "--log", log, "--db", core, *args, **env)


def test_warmup_project_keeps_the_models_current_and_counts_a_duplicated_line_once(tmp_path: Path) -> None:
    db, log, core = migrated(tmp_path), tmp_path / "events.jsonl", tmp_path / "warmup.db"
    builder = LogBuilder(seed=1)
    lines = builder.runs_lines(6)
    twice = next(data for data in lines if b'"account_finished"' in data and b'"COMPLETED"' in data)
    append(log, lines + [twice])  # an account's completion, twice
    result = project(db, log, core)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    want = expected(log)
    assert models(db) == want
    account = json.loads(twice)["account_id"]
    completions = len({e["id"] for e in map(json.loads, lines)  # (runs_lines duplicates some lines too)
                       if e["type"] == "account_finished" and e["status"] == "COMPLETED"
                       and e["account_id"] == account})
    assert [r[2] for r in models(db)["accounts"] if r[0] == account] == [completions]  # not completions + 1
    assert [c[0] for c in checkpoints(db)] == ["uploader_step_stats", "uploader_warmup_tasks"]
    assert {c[2] for c in checkpoints(db)} == {log.stat().st_size}
    assert {c[5] for c in checkpoints(db)} == {"uploader.warmup_projections:StepStats",
                                                "uploader.warmup_projections:WarmupTasks"}

    # more runs, and a line duplicated across two invocations: applied once, again
    append(log, builder.runs_lines(4) + [builder.finished[1], builder.finished[-1]])
    result = project(db, log, core, "--projection", "uploader_warmup_tasks")
    assert result.returncode == 0, result.stderr
    got, want = models(db), expected(log)
    assert {k: got[k] for k in ("accounts", "tasks", "task_accounts")} == {
        k: want[k] for k in ("accounts", "tasks", "task_accounts")}
    result = project(db, log, core)  # the other projection catches up on its own
    assert result.returncode == 0, result.stderr
    assert models(db) == want

    # --rebuild gives the same models
    result = project(db, log, core, "--rebuild")
    assert result.returncode == 0, result.stderr
    assert models(db) == want


def test_a_rebuild_without_clear_is_refused_in_one_line(tmp_path: Path) -> None:
    db, log, core = migrated(tmp_path), tmp_path / "events.jsonl", tmp_path / "warmup.db"
    append(log, LogBuilder(seed=2).runs_lines(1))
    assert project(db, log, core, WARMUP_TEST_DJANGO_APPS="noclear").returncode == 0
    refused = project(db, log, core, "--rebuild", "--projection", "noclear", WARMUP_TEST_DJANGO_APPS="noclear")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        "CommandError: projection 'noclear' cannot be rebuilt: define clear() in NoClear to delete (or zero) "
        "what its handlers wrote; the rebuild then replays the log")


def test_before_migrate_the_command_says_to_migrate(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    append(log, LogBuilder(seed=3).runs_lines(1))
    result = project(tmp_path / "empty.sqlite3", log, tmp_path / "warmup.db")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "CommandError: projection 'uploader_warmup_tasks': the database 'default' has no table "
        "warmup_django_checkpoint: run `python manage.py migrate --database default` first")


def wait_for(predicate: Any, what: str, timeout: float = 180) -> None:
    """Poll ``predicate`` until true (a deadline far above what it takes: no race decides the result)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def caught_up(db: Path, log: Path, cores: list[Path]) -> bool:
    """The core databases and both projections' checkpoints are at the end of the log."""
    size = log.stat().st_size
    try:
        positions = [c[2] for c in checkpoints(db)]
        positions += [p for core in cores for (p,) in query(core, "SELECT position FROM warmup_checkpoints "
                                                                  "WHERE name = 'core'")]
    except sqlite3.OperationalError:  # (not created yet, or locked for a moment by a batch)
        return False
    return len(positions) == 2 + len(cores) and set(positions) == {size}


def follow(db: Path, log: Path, core: Path, stderr: Any = subprocess.DEVNULL) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "warmup_project", "--follow", "--log", str(log), "--db", str(core)],
        cwd=PROJECT, env=django_env(db), stdout=subprocess.DEVNULL, stderr=stderr)


@pytest.mark.faults
@pytest.mark.slow
def test_ten_sigkills_mid_log_then_the_models_equal_a_rebuild(tmp_path: Path) -> None:
    """Ten times: ``warmup_project --follow`` catches up, runs are appended, and it is killed (SIGKILL)
    at a random moment of applying them (in a Django transaction, between a projection's commit and
    the core's, or after). Whatever was cut, one more ``warmup_project`` gives the models of the log,
    the same as ``--rebuild`` and as a fresh build."""
    db, log, core = migrated(tmp_path), tmp_path / "events.jsonl", tmp_path / "warmup.db"
    builder, rng = LogBuilder(seed=4), random.Random(4)
    append(log, builder.runs_lines(2))
    for _ in range(10):
        follower = follow(db, log, core)
        try:
            wait_for(lambda: caught_up(db, log, [core]), "the follower to catch up")
            append(log, builder.runs_lines(8))
            try:
                follower.wait(timeout=rng.uniform(0, 1.5))
            except subprocess.TimeoutExpired:
                pass
        finally:
            follower.kill()
            follower.wait(timeout=60)
        assert follower.returncode == -signal.SIGKILL
    result = project(db, log, core)
    assert result.returncode == 0, result.stderr
    after_kills, cps = models(db), checkpoints(db)
    assert after_kills == expected(log)
    assert project(db, log, core, "--rebuild").returncode == 0
    assert models(db) == after_kills
    assert checkpoints(db) == cps
    fresh = migrated(tmp_path, "fresh.sqlite3")
    assert project(fresh, log, tmp_path / "fresh-warmup.db").returncode == 0
    assert models(fresh) == after_kills


@pytest.mark.slow
@pytest.mark.parametrize("shared_core", [True, False], ids=["one-core-db", "a-core-db-each"])
def test_two_followers_on_one_sqlite_django_database_take_turns(tmp_path: Path, shared_core: bool) -> None:
    """Two ``warmup_project --follow`` while runs are appended: both stop on SIGTERM with exit 0, and
    every event counted once. With a core database each, nothing but the Django database's write
    lock (taken first in every batch) keeps them apart."""
    db, log = migrated(tmp_path), tmp_path / "events.jsonl"
    cores = [tmp_path / "warmup.db"] * 2 if shared_core else [tmp_path / "a.db", tmp_path / "b.db"]
    errs = [open(tmp_path / f"follower{i}.err", "w+") for i in range(2)]
    followers = [follow(db, log, core, err) for core, err in zip(cores, errs, strict=True)]
    try:
        builder = LogBuilder(seed=5)
        for _ in range(10):
            append(log, builder.runs_lines(5))
            time.sleep(0.1)
        wait_for(lambda: caught_up(db, log, sorted(set(cores))), "both projections at the end of the log")
    finally:
        for f in followers:
            f.send_signal(signal.SIGTERM)
        codes = [f.wait(timeout=120) for f in followers]
    stderr = []
    for err in errs:
        err.seek(0)
        stderr.append(err.read())
        err.close()
    assert codes == [0, 0], stderr
    assert not any("Traceback" in s or "locked" in s for s in stderr), stderr
    assert models(db) == expected(log)


@pytest.mark.browser
@pytest.mark.slow
def test_a_follower_beside_a_real_warmup_run(site: str, work: Workdir) -> None:
    """``warmup run`` drives Chromium (and its own projector child) while ``warmup_project --follow``
    keeps the Django models current from the same log; after the run, the models are the log's."""
    db = migrated(work.root)
    task = work.task(f"""
id = "uploader"
name = "Uploader warm-up"
concurrency = 2
retries = 1
[[accounts]]
id = "alice"
vars = {{ sel = "#feed" }}
[[accounts]]
id = "bob"
vars = {{ sel = "#feed" }}
[[accounts]]
id = "carol"
vars = {{ sel = "#missing" }}
[[steps]]
goto = "{site}/feed"
[[steps]]
click = "#more"
[[steps]]
wait_for = "${{account.sel}}"
timeout_ms = 500
""")
    err = open(work.root / "follower.err", "w+")
    follower = follow(db, work.log, work.db, err)
    try:
        result = warmup(*work.run_args(task), env=cli_env())
        assert result.returncode == 1, result.stderr  # carol failed, twice
        wait_for(lambda: caught_up(db, work.log, [work.db]), "the follower to apply the whole run")
    finally:
        follower.send_signal(signal.SIGTERM)
        code = follower.wait(timeout=120)
    err.seek(0)
    stderr = err.read()
    err.close()
    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr
    got = models(db)
    assert got == expected(work.log)
    assert [(a, warmed, n) for a, warmed, n, _ in got["accounts"]] == [
        ("alice", 1, 1), ("bob", 1, 1), ("carol", 0, 0)]
    [(run_id, task_id, name, status, *_rest)] = got["tasks"]
    assert (task_id, name, status) == ("uploader", "Uploader warm-up", "FAILED")
    carol = [r for r in got["task_accounts"] if r[1] == "carol"][0]
    assert carol[2:4] == ("FAILED", 2) and "attempt 1 failed, retrying" in carol[6]


def test_a_handler_that_raises_stops_its_projection_only_and_exit_1(tmp_path: Path) -> None:
    db, log, core = migrated(tmp_path), tmp_path / "events.jsonl", tmp_path / "warmup.db"
    builder = LogBuilder(seed=6)
    append(log, builder.runs_lines(1))
    assert project(db, log, core, WARMUP_TEST_DJANGO_APPS="failing").returncode == 0
    append(log, builder.runs_lines(2))
    result = project(db, log, core, WARMUP_TEST_DJANGO_APPS="failing")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "projection 'failing' stopped" in result.stderr and "no room for run0002" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "CommandError: a projection failed (see above); the others are up to date")
    assert models(db) == expected(log)  # the recipe's projections went on
    failing = query(db, "SELECT position FROM warmup_django_checkpoint WHERE name = 'failing'")
    assert failing and failing[0][0] < log.stat().st_size  # its checkpoint stayed before that batch


def test_the_log_and_core_database_default_to_warmup_log_and_warmup_db(tmp_path: Path) -> None:
    db, log, core = migrated(tmp_path), tmp_path / "events.jsonl", tmp_path / "core.db"
    append(log, LogBuilder(seed=8).runs_lines(2))
    result = manage(db, "warmup_project", WARMUP_LOG=str(log), WARMUP_DB=str(core))
    assert result.returncode == 0, result.stderr
    assert f"from {log} to {core}" in result.stderr
    assert models(db) == expected(log)


def test_a_version_bump_clears_and_rebuilds_that_projection(tmp_path: Path) -> None:
    db, log, core = migrated(tmp_path), tmp_path / "events.jsonl", tmp_path / "warmup.db"
    builder = LogBuilder(seed=9)
    append(log, builder.runs_lines(3))
    assert project(db, log, core).returncode == 0
    append(log, builder.runs_lines(2))
    result = project(db, log, core, WARMUP_TEST_STEP_STATS_VERSION="2")
    assert result.returncode == 0, result.stderr
    assert ("projection 'uploader_step_stats' was built by version 1; this is version 2: rebuilding it from the log"
            in result.stderr)
    assert models(db) == expected(log)  # rebuilt from the whole log: nothing counted twice
    assert query(db, "SELECT name, version FROM warmup_django_checkpoint ORDER BY name") == [
        ("uploader_step_stats", 2), ("uploader_warmup_tasks", 1)]


def test_warmup_project_takes_a_django_projection_by_its_spec_when_django_is_configured(tmp_path: Path) -> None:
    """`warmup project --projection app.warmup_projections:Class` (or `warmup run --projection`) sets
    Django up from DJANGO_SETTINGS_MODULE; without it, one line and exit 2."""
    db, log, core = migrated(tmp_path), tmp_path / "events.jsonl", tmp_path / "warmup.db"
    append(log, LogBuilder(seed=3).runs_lines(3))
    spec = "uploader.warmup_projections:WarmupTasks"
    args = [sys.executable, "-m", "cli", "project", "--log", str(log), "--db", str(core), "--projection", spec]
    bare = subprocess.run(args, cwd=PROJECT, env=django_env(db), capture_output=True, text=True, timeout=120)
    assert bare.returncode == 2 and "DJANGO_SETTINGS_MODULE" in bare.stderr, bare.stderr
    assert len(bare.stderr.strip().splitlines()) == 1
    configured = {**django_env(db), "DJANGO_SETTINGS_MODULE": "testsite.settings"}
    done = subprocess.run(args, cwd=PROJECT, env=configured, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    without_steps = {k: v for k, v in expected(log).items() if k != "step_stats"}  # (StepStats was not given)
    assert {k: v for k, v in models(db).items() if k != "step_stats"} == without_steps
    assert models(db)["step_stats"] == []
