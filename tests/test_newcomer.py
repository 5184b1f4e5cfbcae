"""What a newcomer meets first: how to get the command, the demo's hints, and the quick test loop."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO


def test_the_readme_and_the_demo_say_how_to_get_the_warmup_command() -> None:
    readme = (REPO / "README.md").read_text()
    assert "source .venv/bin/activate" in readme and ".venv/bin/warmup" in readme
    demo = (REPO / "examples" / "demo.sh").read_text()
    hints = [line for line in demo.splitlines() if line.lstrip().startswith("echo")]
    suggested = [m for line in hints for m in re.findall(r"'([^']*warmup [a-z][^']*)'", line, re.I)]
    assert suggested, "the demo suggests commands to try"
    for command in suggested:  # a command that works right after `make demo`, without activating
        assert command.startswith("$WARMUP ") or command.startswith("source .venv/bin/activate"), command
    assert "WARMUP=.venv/bin/warmup" in demo
    assert "source .venv/bin/activate" in " ".join(hints)


def test_make_test_fast_leaves_out_the_fault_suite_and_the_slow_tests_and_the_readme_says_what_test_costs() -> None:
    # --no-print-directory: under `make test` (CI) this make is a sub-make, which would say where it is
    dry = subprocess.run(["make", "-n", "--no-print-directory", "test-fast", "PY=python"], cwd=REPO,
                         capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    command = dry.stdout.strip().splitlines()[-1]
    assert command == 'python -m pytest -q -m "not faults and not slow"'
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", "not faults and not slow"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    ).stdout
    assert "test_faults_runner.py" not in collected and "test_faults_projector.py" not in collected
    assert "test_run_ids.py" in collected
    readme = (REPO / "README.md").read_text()
    assert "make test-fast" in readme
    assert re.search(r"`make test` takes about \d+ minutes", readme), "the README states what `make test` costs"
    assert "CI" in readme and "everything" in readme
