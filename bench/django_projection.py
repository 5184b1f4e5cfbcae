"""Benchmark: the Django projections of tests/django_project on a synthetic log (issue 10).

Builds a fresh Django database (``manage.py migrate``), then runs, as a user does:

- ``warmup project`` (the core tables alone), for reference;
- ``manage.py warmup_project`` with the recipe projections (``WarmupTasks``: one WarmupTask per run,
  one WarmupTaskAccount per run and account, Account.mark_as_warmed; ``StepStats``: per-action
  counters), the ORM issuing one or two queries per event they handle;

and prints events/s for each (the whole log divided by the command's wall time, start-up included).

    .venv/bin/python bench/django_projection.py                 # 100,000 events
    .venv/bin/python bench/django_projection.py --events 20000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_log import write_synthetic_log  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO / "tests" / "django_project"


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {done.stderr}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--all", action="store_true", help="also with the second projection, StepStats")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="warmup-bench-django-") as tmp:
        log = Path(tmp) / "events.jsonl"
        write_synthetic_log(log, args.events)
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
        env.update(WARMUP_TEST_DJANGO_DB=str(Path(tmp) / "django.sqlite3"), PYTHONPATH=str(REPO),
                   DJANGO_SETTINGS_MODULE="testsite.settings")
        manage = [sys.executable, "manage.py"]
        timed([*manage, "migrate", "-v", "0"], PROJECT, env)
        core_s = timed([sys.executable, "-m", "cli", "project", "--log", str(log), "--db", str(Path(tmp) / "core.db")],
                       REPO, env)
        print(f"log: {args.events:,} events")
        print(f"warmup project (core tables alone): {core_s:.2f} s, {args.events / core_s:,.0f} events/s")
        variants = [("WarmupTasks", ["--projection", "uploader_warmup_tasks"])]
        if args.all:
            variants.append(("WarmupTasks + StepStats", []))
        for label, extra in variants:
            db = Path(tmp) / f"core-{len(extra)}.db"  # (a fresh core database: the core tables are built too)
            seconds = timed([*manage, "warmup_project", "--rebuild", "--log", str(log), "--db", str(db), *extra],
                            PROJECT, env)
            print(f"manage.py warmup_project, {label} (and the core tables): {seconds:.2f} s, "
                  f"{args.events / seconds:,.0f} events/s")


if __name__ == "__main__":
    main()
