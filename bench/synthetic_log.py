"""A synthetic but realistic event log, as a concurrent runner writes it (for benchmarks and tests).

Runs of ``accounts_per_run`` accounts x ``steps`` steps, ``concurrency`` accounts interleaved at a
time, about ``failure_rate`` of the accounts failing at a random step. Deterministic for a seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

ACTIONS = ("goto", "scroll", "click", "fill", "wait_ms", "expect_title")


def synthetic_events(
    n_events: int,
    *,
    accounts_per_run: int = 50,
    steps: int = 6,
    concurrency: int = 8,
    failure_rate: float = 0.1,
    tasks: int = 20,
    seed: int = 1,
) -> Iterator[dict]:
    rnd = random.Random(seed)
    clock = datetime(2026, 11, 1, tzinfo=UTC)
    seq = 0
    emitted = 0
    run_no = 0

    def ev(type_: str, **fields: object) -> dict:
        nonlocal seq, clock
        seq += 1
        clock += timedelta(microseconds=rnd.randrange(1000, 50_000))
        return {"v": 1, "id": f"{seed:04x}{seq:012x}", "type": type_,
                "ts": clock.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), **fields}

    while emitted < n_events:
        run_no += 1
        task = run_no % tasks
        run_id = f"run-{seed}-{run_no:06d}"
        accounts = [f"t{task:02d}-acct{i:03d}" for i in range(accounts_per_run)]
        out = [ev("run_started", run_id=run_id, task_id=f"task-{task:02d}", task_name=f"Task {task}",
                  accounts=accounts, steps=steps, concurrency=concurrency, host="bench", pid=4242,
                  task={"id": f"task-{task:02d}", "steps": steps})]
        waiting = list(accounts)
        active: dict[str, list[dict]] = {}
        while waiting or active:
            while waiting and len(active) < concurrency:
                acct = waiting.pop(0)
                fail_at = rnd.randrange(steps) if rnd.random() < failure_rate else -1
                plan = [{"type": "account_started", "attempt": 1}]
                for i in range(steps):
                    ok = i != fail_at
                    plan.append({"type": "step_finished", "index": i, "action": ACTIONS[i % len(ACTIONS)], "ok": ok,
                                 "duration_ms": round(rnd.uniform(5, 900), 3), "attempt": 1,
                                 "error": None if ok else "Timeout 10000ms exceeded waiting for #feed .item"})
                    if not ok:
                        break
                plan.append({"type": "account_finished", "status": "COMPLETED" if fail_at < 0 else "FAILED",
                             "error": None if fail_at < 0 else "step failed: Timeout 10000ms exceeded",
                             "attempt": 1})
                active[acct] = plan
            acct = rnd.choice(list(active))
            spec = active[acct].pop(0)
            type_ = spec.pop("type")
            out.append(ev(type_, run_id=run_id, account_id=acct, **spec))
            if not active[acct]:
                del active[acct]
        out.append(ev("run_finished", run_id=run_id, status="FAILED", reason=None))
        for e in out:
            if emitted >= n_events:
                return
            emitted += 1
            yield e


def write_synthetic_log(path: Path, n_events: int, **kwargs: object) -> int:
    """Write ``n_events`` events to ``path``; returns its size in bytes."""
    with open(path, "wb") as f:
        buf = []
        for e in synthetic_events(n_events, **kwargs):  # type: ignore[arg-type]
            buf.append(orjson.dumps(e))
            if len(buf) >= 10_000:
                f.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            f.write(b"\n".join(buf) + b"\n")
    return path.stat().st_size
