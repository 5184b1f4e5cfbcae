"""``warmup.contrib.django``: a real Django project (tests/django_project/) and ``manage.py`` in subprocesses.

The project's ``uploader`` app has the original app's models (Account, WarmupTask, WarmupTaskAccount)
and the docs/django.md recipe as its ``warmup_projections.py``. Every ``manage.py`` runs with
``DJANGO_ALLOW_ASYNC_UNSAFE`` removed from its environment: the projections never need it. Each
test has its own SQLite database (``$WARMUP_TEST_DJANGO_DB`` in tmp_path).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, cli_env

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
    waits end in "database is locked" and a retry), two writers of 200 batches both finish, and no
    batch is lost. Without the lock taken first, one of them fails on a read-to-write upgrade."""
    db = migrated(tmp_path)
    writers = [exercise(db, "turns", "200", WARMUP_TEST_DJANGO_TIMEOUT="0.01") for _ in range(2)]
    for w in writers:
        out, err = w.communicate(timeout=180)
        assert w.returncode == 0, err
        assert json.loads(out) == {"done": 200}
    assert query(db, "SELECT ok FROM uploader_stepstat WHERE action = 'turns'") == [(400,)]
    assert query(db, "SELECT events_applied FROM warmup_django_checkpoint") == [(400,)]
