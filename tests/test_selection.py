"""Choosing accounts and runs: ``warmup run TASK --account ID`` and ``--resume/--retry-failed last`` of a task.

Real runs (Chromium, the test site), the CLI as a user runs it; two tasks share one log.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Workdir, warmup

pytestmark = pytest.mark.browser


def task_text(site: str, task_id: str, pages: dict[str, str]) -> str:
    """A task whose account ``a`` opens ``pages[a]``: ``/whoami`` completes, ``/broken`` (HTTP 500) fails."""
    accounts = "".join(f'[[accounts]]\nid = "{a}"\nvars = {{ page = "{p}" }}\n' for a, p in pages.items())
    return f'id = "{task_id}"\nconcurrency = 2\n{accounts}[[steps]]\ngoto = "{site}${{account.page}}"\n'


def run(work: Workdir, task: Path | None, *extra: str) -> tuple[int, str, list[dict]]:
    """(exit code, stderr, the events this command appended)."""
    before = len(work.events())
    args = work.run_args(task, "--no-project", *extra) if task else [
        "run", "--log", str(work.log), "--artifacts", str(work.artifacts), "--no-project", *extra]
    result = warmup(*args)
    return result.returncode, result.stderr, work.events()[before:]


def finished(events: list[dict]) -> dict[str, str]:
    return {e["account_id"]: e["status"] for e in events if e["type"] == "account_finished"}


def started(events: list[dict]) -> dict:
    return next(e for e in events if e["type"] == "run_started")


def test_account_runs_only_those_accounts_in_the_tasks_order(site: str, work: Workdir) -> None:
    path = work.task(task_text(site, "three", {"a1": "/whoami", "a2": "/whoami", "a3": "/whoami"}))
    code, err, events = run(work, path, "--account", "a3", "--account", "a1")
    assert code == 0, err
    assert started(events)["accounts"] == ["a1", "a3"]
    assert [a["id"] for a in started(events)["task"]["accounts"]] == ["a1", "a3"]
    assert finished(events) == {"a1": "COMPLETED", "a3": "COMPLETED"}
    assert {e["account_id"] for e in events if "account_id" in e} == {"a1", "a3"}


def test_an_unknown_account_is_one_line_listing_known_ids_and_appends_nothing(site: str, work: Workdir) -> None:
    pages = {f"user{i}": "/whoami" for i in range(8)}
    path = work.task(task_text(site, "many", pages))
    code, err, events = run(work, path, "--account", "user1", "--account", "zed")
    assert code == 2 and events == [] and not work.log.exists()
    assert err.splitlines() == [
        f"warmup: --account 'zed': no such account in task file {path} "
        "(its accounts: user0, user1, user2, user3, user4 and 3 more)"
    ]


def test_resume_last_with_a_task_file_takes_that_tasks_latest_run(site: str, work: Workdir) -> None:
    alpha = work.task(task_text(site, "alpha", {"a1": "/whoami", "a2": "/broken", "a3": "/broken"}), "alpha.toml")
    beta = work.task(task_text(site, "beta", {"b1": "/broken"}), "beta.toml")
    code, err, alpha_run = run(work, alpha)
    assert code == 1, err
    alpha_id = started(alpha_run)["run_id"]
    code, err, beta_run = run(work, beta)
    assert code == 1, err
    beta_id = started(beta_run)["run_id"]

    # without a file, `last` is the log's latest run (beta's): an account it never had is refused
    code, err, events = run(work, None, "--retry-failed", "last", "--account", "a1")
    assert code == 2 and events == []
    assert err.splitlines() == [f"warmup: --account 'a1': no such account in run {beta_id} (its accounts: b1)"]

    # `last` with alpha's file is alpha's run, though beta's is the log's latest
    code, err, events = run(work, alpha, "--retry-failed", "last", "--account", "a3", "--account", "a1")
    assert code == 1, err  # /broken still fails
    assert started(events)["resumed_from"] == alpha_id and started(events)["task_id"] == "alpha"
    assert finished(events) == {"a3": "FAILED"}  # failed ones, among those named (a1 had completed)
    assert "no longer in" not in err
    previous = started(events)["run_id"]

    # an id of beta's run with alpha's file: one line; nothing appended
    code, err, events = run(work, alpha, "--resume", beta_id)
    assert code == 2 and events == []
    assert err.splitlines() == [
        f"warmup: --resume {beta_id}: run {beta_id} is a run of task 'beta', not of task 'alpha': "
        "give a run of 'alpha' (or 'last'), or leave out the task file"
    ]

    # a file that no longer has the account left to do: said, and nothing runs
    alpha.write_text(task_text(site, "alpha", {"a9": "/whoami"}))
    code, err, events = run(work, alpha, "--retry-failed", "last")
    assert code == 0 and events == [], err
    assert f"warmup: note: 1 account(s) of run {previous} are no longer in {alpha} and are left out: a3" in err

    # the file as it is now runs (a fixed step, one more step): a3 completes
    alpha.write_text(task_text(site, "alpha", {"a3": "/whoami"}) + '[[steps]]\nwait_ms = 1\n')
    code, err, events = run(work, alpha, "--retry-failed", "last")
    assert code == 0 and finished(events) == {"a3": "COMPLETED"}, err
    assert started(events)["resumed_from"] == previous and started(events)["steps"] == 2


def test_resume_last_of_a_task_with_no_run_is_refused_in_one_line(site: str, work: Workdir) -> None:
    other = work.task(task_text(site, "other", {"o1": "/whoami"}), "other.toml")
    code, err, _ = run(work, other)
    assert code == 0, err
    fresh = work.task(task_text(site, "fresh", {"f1": "/whoami"}), "fresh.toml")
    code, err, events = run(work, fresh, "--resume", "last")
    assert code == 2 and events == []
    assert err.splitlines() == [
        f"warmup: --resume last: no run of task 'fresh' in {work.log} yet, so 'last' names none: "
        "run the task file without --resume/--retry-failed"
    ]


def test_nothing_left_among_the_chosen_accounts_is_said_and_exit_0(site: str, work: Workdir) -> None:
    path = work.task(task_text(site, "pair", {"ok": "/whoami", "bad": "/broken"}))
    code, err, first = run(work, path)
    assert code == 1, err
    code, err, events = run(work, path, "--resume", "last", "--account", "ok")
    assert code == 0 and events == [], err
    run_id = started(first)["run_id"]
    assert f"run {run_id}: nothing to resume: no failed, interrupted or cancelled account among the --account ones" \
        in warmup(*work.run_args(path, "--no-project", "--resume", "last", "--account", "ok")).stdout
