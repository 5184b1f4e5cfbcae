"""``plan_resume`` over a handwritten log, fast and without a browser.

Invariants: ``--resume`` picks exactly the accounts whose *final* status in that run is FAILED,
INTERRUPTED or CANCELLED, in the run's order (an attempt that failed and was retried into a
success is not picked; another run's failures are not picked); ``--retry-failed`` exactly the
FAILED ones; the task handed back holds those accounts and nothing else.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from warmup.errors import UsageError
from warmup.resume import plan_resume
from warmup.tasks import load_task

RUN = "20261129T070000-1a2b3c"
OTHER = "20261129T070500-4d5e6f"
_clock = itertools.count()


def event(type_: str, **fields: Any) -> dict[str, Any]:
    second = next(_clock)
    ts = f"2026-11-29T07:{second // 60:02d}:{second % 60:02d}.000000Z"
    return {"v": 1, "id": uuid.uuid4().hex, "type": type_, "ts": ts, **fields}


def started(run_id: str, accounts: list[str], record: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return event("run_started", run_id=run_id, task_id="t", task_name="t", accounts=accounts, steps=1,
                 concurrency=2, host="elsewhere", pid=1, task=record, **extra)


def attempt(run_id: str, account: str, n: int, status: str, *, retrying: bool = False) -> list[dict[str, Any]]:
    return [
        event("account_started", run_id=run_id, account_id=account, attempt=n),
        event("step_finished", run_id=run_id, account_id=account, index=0, action="wait_ms", ok=status == "COMPLETED",
              duration_ms=1.0, error=None if status == "COMPLETED" else "boom", attempt=n),
        event("account_finished", run_id=run_id, account_id=account, status=status,
              error=None if status == "COMPLETED" else "boom", attempt=n, retrying=retrying),
    ]


ACCOUNTS = ["a1", "a2", "a3", "a4", "a5", "a6", "a7"]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    task_file = tmp_path / "t.toml"
    task_file.write_text("retries = 1\n" + "".join(f'[[accounts]]\nid = "{a}"\n' for a in ACCOUNTS)
                         + "[[steps]]\nwait_ms = 1\n")
    record = load_task(task_file, env={}).record()
    lines = [
        started(RUN, ACCOUNTS, record),
        started(OTHER, ["a1", "a6"], record),  # another run, interleaved: its failures are not ours
        *attempt(RUN, "a1", 1, "COMPLETED"),
        *attempt(RUN, "a2", 1, "FAILED", retrying=True),
        *attempt(OTHER, "a1", 1, "FAILED"),
        *attempt(RUN, "a2", 2, "FAILED"),  # failed twice: FAILED
        *attempt(RUN, "a3", 1, "FAILED", retrying=True),
        *attempt(RUN, "a3", 2, "COMPLETED"),  # failed once, then completed: done
        event("account_started", run_id=RUN, account_id="a4", attempt=1),
        event("account_finished", run_id=RUN, account_id="a4", status="INTERRUPTED", error="SIGINT", attempt=1),
        event("account_finished", run_id=RUN, account_id="a5", status="CANCELLED", error="not started", attempt=0),
        *attempt(RUN, "a6", 1, "COMPLETED"),
        *attempt(OTHER, "a6", 1, "FAILED"),
        *attempt(RUN, "a7", 1, "FAILED"),
        event("run_finished", run_id=OTHER, status="FAILED"),
        event("run_finished", run_id=RUN, status="INTERRUPTED", reason="SIGINT received"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def test_resume_picks_exactly_the_unfinished_accounts_in_run_order(log: Path) -> None:
    plan = plan_resume(log, RUN, failed_only=False)
    assert plan.account_ids == ["a2", "a4", "a5", "a7"]
    assert plan.task is not None and [a.id for a in plan.task.accounts] == ["a2", "a4", "a5", "a7"]
    assert plan.task.retries == 1  # the rest of the task comes from the record


def test_retry_failed_picks_exactly_the_failed_accounts(log: Path) -> None:
    plan = plan_resume(log, RUN, failed_only=True)
    assert plan.account_ids == ["a2", "a7"]
    assert plan.task is not None and [a.id for a in plan.task.accounts] == ["a2", "a7"]


def test_the_other_run_is_planned_on_its_own_events(log: Path) -> None:
    assert plan_resume(log, OTHER, failed_only=True).account_ids == ["a1", "a6"]


def test_a_run_with_nothing_left_has_an_empty_plan(log: Path) -> None:
    done = "20261129T071000-0a0b0c"
    record = orjson.loads(log.read_bytes().splitlines()[0])["task"]
    with log.open("ab") as f:
        for line in [started(done, ["a1"], record), *attempt(done, "a1", 1, "COMPLETED"),
                     event("run_finished", run_id=done, status="COMPLETED")]:
            f.write(orjson.dumps(line) + b"\n")
    plan = plan_resume(log, done, failed_only=False)
    assert plan.account_ids == [] and plan.task is None


def test_a_run_already_resumed_is_refused_naming_the_later_run(log: Path) -> None:
    record = orjson.loads(log.read_bytes().splitlines()[0])["task"]
    later = "20261129T072000-7a8b9c"
    with log.open("ab") as f:
        f.write(orjson.dumps(started(later, ["a2"], record, resumed_from=RUN)) + b"\n")
    with pytest.raises(UsageError, match=f"run {later} already resumed it; resume {later} instead"):
        plan_resume(log, RUN, failed_only=False)
