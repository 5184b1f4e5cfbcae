"""The runner's import contract, fast and without a browser: it never loads a database module.

``warmup run`` writes the event log only; the projector (``warmup.projector``, sqlite3,
sqlite_utils) runs in its own process. Importing the CLI and every module of ``warmup.runner`` (found
on disk, so a new module is covered too) in a fresh interpreter must leave none of them in
``sys.modules``. The same probe on ``warmup.projector.command`` must find sqlite3: the proof that
the probe would see a violation. (tests/test_runner_nodb.py proves the same of a real run.)
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, cli_env

BANNED_ROOTS = ("sqlite3", "_sqlite3", "sqlite_utils", "django")
BANNED_PACKAGES = ("warmup.projector", "warmup.projections", "warmup.projection", "warmup.contrib")

PROBE = r"""
import importlib, json, pkgutil, sys
import warmup.runner
names = sys.argv[1:] or ["cli", "warmup.resume", "warmup.recover", "warmup.tasks"] + [
    "warmup.runner." + m.name for m in pkgutil.iter_modules(warmup.runner.__path__)
]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
"""


def probe(*modules: str) -> tuple[list[str], list[str]]:
    """Import ``modules`` (default: the runner's) in a fresh interpreter; (imported, banned ones loaded)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *modules], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    banned = [
        m for m in report["loaded"]
        if m.split(".")[0] in BANNED_ROOTS or any(m == p or m.startswith(p + ".") for p in BANNED_PACKAGES)
    ]
    return report["imported"], banned


def test_the_runner_modules_load_no_database_module() -> None:
    imported, banned = probe()
    assert {"warmup.runner.command", "warmup.runner.engine", "warmup.runner.recorder"} <= set(imported)
    assert banned == [], f"the runner loads {banned}"


def test_the_probe_sees_a_module_that_does_load_the_database() -> None:
    _, banned = probe("warmup.projector.command")
    assert "sqlite3" in banned and "warmup.projector" in banned
