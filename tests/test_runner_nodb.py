"""The runner process imports no sqlite3/sqlite_utils and opens no database file: proven, not read.

``warmup run`` is started in a subprocess under an audit hook (``sys.addaudithook``) that notes
every ``import`` of sqlite3, _sqlite3 or sqlite_utils, every ``open`` of a database-looking file
(``*.db``, ``*.db-wal``, ``*.sqlite``...) and any ``sqlite3.connect``; at exit it also lists such
modules in ``sys.modules``. The hook only records (raising could be swallowed by a
``try: import ... except ImportError``). The same harness run on ``warmup project``, which does use
the database, must report it: that is the proof the harness would catch the runner doing it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, Workdir, cli_env

GUARD = r'''
import atexit, json, os, sys

REPORT = os.environ["NODB_REPORT"]
BANNED = ("sqlite3", "_sqlite3", "sqlite_utils")
DB_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".sqlite", ".sqlite3")
violations = []
seen = set()
busy = [False]

def hook(event, args):
    if busy[0]:
        return
    if event == "import":
        name = str(args[0])
        seen.add(name.split(".")[0])
        if name.split(".")[0] in BANNED:
            violations.append("import " + name)
    elif event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        if path.endswith(DB_SUFFIXES):
            violations.append("open " + path)
    elif event == "sqlite3.connect":
        violations.append("sqlite3.connect")

def report():
    busy[0] = True
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BANNED)
    with open(REPORT, "w") as f:
        json.dump({"violations": violations, "loaded": loaded, "seen": sorted(seen)}, f)

sys.addaudithook(hook)
atexit.register(report)
sys.argv = ["warmup", *sys.argv[1:]]
import cli
cli.main()
'''


def guarded(work: Workdir, *args: str) -> tuple[int, dict, str]:
    """Run the CLI with ``args`` under the guard; (exit code, the guard's report, stderr)."""
    guard = work.root / "guard.py"
    guard.write_text(GUARD)
    report = work.root / "nodb-report.json"
    result = subprocess.run(
        [sys.executable, str(guard), *args],
        cwd=REPO,
        env=cli_env(NODB_REPORT=str(report)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, json.loads(report.read_text()), result.stderr


@pytest.mark.browser
def test_warmup_run_imports_no_sqlite_and_opens_no_database(site: str, work: Workdir) -> None:
    task = work.task(f"""
[[accounts]]
id = "alice"
[[accounts]]
id = "bob"
[[steps]]
goto = "{site}/feed"
[[steps]]
screenshot = "feed"
""")
    code, report, stderr = guarded(work, *work.run_args(task, "--no-project"))
    assert code == 0, stderr
    assert "playwright" in report["seen"], "the hook saw no imports: it was not active"
    assert report["violations"] == [] and report["loaded"] == []
    assert len(list(work.artifacts.rglob("feed.png"))) == 2  # it really ran
    assert not Path(work.db).exists()


def test_the_harness_catches_a_command_that_uses_the_database(work: Workdir) -> None:
    work.log.write_bytes(b"")
    code, report, stderr = guarded(work, "project", "--log", str(work.log), "--db", str(work.db))
    assert code == 0, stderr
    assert any(v.startswith("import sqlite") for v in report["violations"])
    assert any(v == f"open {work.db}" or v == "sqlite3.connect" for v in report["violations"]), report
    assert "sqlite3" in report["loaded"]
