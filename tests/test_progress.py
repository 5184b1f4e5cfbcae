"""The runner's progress bar counts each final status as what it is: CANCELLED and INTERRUPTED are not failures."""

from __future__ import annotations

import io
import re

import pytest
from conftest import Workdir, warmup
from rich.console import Console

from warmup.runner.progress import BarProgress, summary


def test_after_ctrl_c_the_bar_says_interrupted_and_cancelled_not_failed() -> None:
    out = io.StringIO()
    bar = BarProgress(Console(file=out, force_terminal=True, width=200, color_system=None))
    bar.start("run-1", 5)
    for account, status in (("a1", "INTERRUPTED"), ("a2", "INTERRUPTED"), ("a3", "CANCELLED"), ("a4", "CANCELLED"),
                            ("a5", "CANCELLED")):
        bar.account_done(account, status, "not started: SIGINT received" if status == "CANCELLED" else "")
    bar.close()
    assert bar.summary() == "0 done, 0 failed, 3 cancelled, 2 interrupted / 5"
    text = out.getvalue()
    assert "0 done, 0 failed, 3 cancelled, 2 interrupted / 5" in text and "5 failed" not in text
    assert "a3: CANCELLED (not started: SIGINT received)" in text


def test_the_summary_shows_done_and_failed_always_and_the_others_once_there_is_one() -> None:
    assert summary({}, 3) == "0 done, 0 failed / 3"
    assert summary({"COMPLETED": 2, "FAILED": 1}, 3) == "2 done, 1 failed / 3"
    assert summary({"COMPLETED": 1, "INTERRUPTED": 1}, 4) == "1 done, 0 failed, 1 interrupted / 4"


@pytest.mark.browser
def test_a_completed_account_with_a_failed_optional_step_says_so_in_its_progress_line(site: str,
                                                                                     work: Workdir) -> None:
    task = work.task(f"""
[[accounts]]
id = "o1"
[[steps]]
goto = "{site}/feed"
[[steps]]
click = "#no-such-banner"
optional = true
timeout_ms = 300
[[steps]]
expect_title = "Feed"
""")
    result = warmup(*work.run_args(task, "--no-project"))
    assert result.returncode == 0, result.stderr
    assert re.search(r"^o1: COMPLETED \(2/3 steps \(1 optional failed\), [0-9.]+ s\)$", result.stderr, re.M), (
        result.stderr)
