"""Benchmark: live projection of one long run, a few events at a time (``project --follow``'s shape).

One run grows to ``--events`` events (default 150,000), appended ``--step`` (default 20) at a time;
after each append an in-process Projector catches up (one small transaction, as the follower and the
runner's projector child commit every ~0.1 s). Reports the milliseconds an increment takes at the
start and at the end (mean of the first and the last ``--window`` increments, wall and CPU), and
the bytes in ``run_event_ids`` at the end.

The goal (issue 9): an increment costs what its events cost, not what the run in flight has grown
to, so "end" should be about "start".

    .venv/bin/python bench/live_ids.py
    .venv/bin/python bench/live_ids.py --events 30000
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # (PYTHONPATH first: run against another checkout)
from warmup.events.envelope import encode, make_event  # noqa: E402
from warmup.projector.projector import Projector  # noqa: E402


def ts(n: int) -> str:
    """A time n microseconds after 07:00 (n < one hour)."""
    return f"2026-11-29T07:{n // 60_000_000 % 60:02d}:{n // 1_000_000 % 60:02d}.{n % 1_000_000:06d}Z"


def one_long_run(n_events: int, n_accounts: int = 200) -> list[bytes]:
    """run_started, every account started, then ok steps round-robin: ``n_events`` lines, run in flight."""
    accounts = [f"acct{i:04d}" for i in range(n_accounts)]
    out = [encode(make_event("run_started", ts=ts(0), run_id="long", task_id="t", task_name="T",
                             accounts=accounts, steps=10**6, concurrency=8, host="bench", pid=1))]
    for i, a in enumerate(accounts):
        out.append(encode(make_event("account_started", ts=ts(i + 1), run_id="long", account_id=a, attempt=1)))
    n = len(out)
    while len(out) < n_events:
        a = accounts[n % n_accounts]
        out.append(encode(make_event("step_finished", ts=ts(n), run_id="long", account_id=a, index=n // n_accounts,
                                     action="click", ok=True, duration_ms=12.5, error=None)))
        n += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--step", type=int, default=20)
    parser.add_argument("--window", type=int, default=200, help="increments averaged at the start and at the end")
    args = parser.parse_args()

    lines = one_long_run(args.events)
    walls: list[float] = []
    cpus: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        log, db = Path(tmp) / "events.jsonl", Path(tmp) / "warmup.db"
        log.write_bytes(b"")
        with Projector(log, db) as projector, open(log, "ab", buffering=0) as f:
            for start in range(0, len(lines), args.step):
                f.write(b"".join(lines[start:start + args.step]))
                w, c = time.perf_counter(), time.process_time()
                projector.catch_up()
                cpus.append(time.process_time() - c)
                walls.append(time.perf_counter() - w)
        conn = sqlite3.connect(db)
        stored = conn.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(ids)), 0) FROM run_event_ids").fetchone()
        steps = conn.execute("SELECT SUM(steps_ok) FROM run_accounts").fetchone()[0]
        conn.close()
    k = min(args.window, len(walls) // 2)

    def ms(xs: list[float]) -> float:
        return 1000 * sum(xs) / len(xs)

    print(f"{len(lines)} events in {len(walls)} increments of {args.step}; steps applied {steps}")
    print(f"start (first {k}): {ms(walls[:k]):.2f} ms wall, {ms(cpus[:k]):.2f} ms CPU per increment")
    print(f"end   (last {k}):  {ms(walls[-k:]):.2f} ms wall, {ms(cpus[-k:]):.2f} ms CPU per increment")
    print(f"total: {sum(walls):.1f} s wall, {sum(cpus):.1f} s CPU; run_event_ids: {stored[0]} rows, {stored[1]} bytes")


if __name__ == "__main__":
    main()
