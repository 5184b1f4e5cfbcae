"""``warmup validate TASK [--browser]``: the CLI as a user runs it, on good and bad task files."""

from __future__ import annotations

import pytest
from conftest import Workdir, cli_env, warmup

from warmup.tasks import ACTIONS

GOOD = """
id = "morning"
[vars]
base = "http://127.0.0.1:9/"
[[accounts]]
id = "alice"
vars = { who = "#who" }
[[accounts]]
id = "bob"
vars = { who = "//p[@id='q']" }
[[steps]]
goto = "${vars.base}whoami"
[[steps]]
click = "${account.who}"
[[steps]]
press = "Enter"
selector = "text=Sign in"
[[steps]]
expect_text = { selector = "p >> nth=0", text = "x" }
"""

# Five problems in five steps, and a sixth (a bad selector) that only a browser sees.
BAD = """
id = "broken"
[[accounts]]
id = "alice"
[[steps]]
goto = "http://127.0.0.1:9/${account.nope}"
[[steps]]
click = "#fine"
[[steps]]
fill = "#user"
[[steps]]
clik = "#typo"
[[steps]]
screenshot = "home"
[[steps]]
screenshot = "home"
[[steps]]
hover = "div["
[[steps]]
goto = "${env.WARMUP_TEST_UNSET_H5}"
"""


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_good_task_is_ok_in_one_line_and_exit_0(work: Workdir) -> None:
    path = work.task(GOOD)
    result = warmup("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == [f"task file {path}: OK: task 'morning', 2 accounts, 4 steps"]
    assert result.stderr == ""
    assert not work.log.exists()  # nothing run, nothing appended


def test_a_bad_task_names_each_problem_with_its_step_and_exit_2(work: Workdir) -> None:
    path = work.task(BAD)
    result = warmup("validate", str(path), env=cli_env())
    assert result.returncode == 2
    assert result.stdout == "" and "Traceback" not in result.stderr
    where = f"warmup: task file {path}"
    assert lines(result.stderr) == [
        f"{where}: step 1 (goto): ${{account.nope}} is not defined for account 'alice'",
        f"{where}: step 3 (fill): missing field 'value'",
        f"{where}: step 4: unknown action 'clik' (actions: {', '.join(ACTIONS)})",
        f"{where}: step 5 (screenshot) and step 6 (screenshot) both name their screenshot 'home' for account "
        "'alice'; give each its own name",
        f"{where}: step 8 (goto): ${{env.WARMUP_TEST_UNSET_H5}}: environment variable WARMUP_TEST_UNSET_H5 is not set",
        f"{where}: 5 problems",
    ]
    # the one line `warmup run` refuses the file with is among them
    run = warmup(*work.run_args(path, "--no-project"))
    assert run.returncode == 2 and len(lines(run.stderr)) == 1 and lines(run.stderr)[0] in lines(result.stderr)


def test_a_problem_outside_the_steps_still_lets_each_step_table_be_checked(work: Workdir) -> None:
    path = work.task("""
[[accounts]]
id = "alice"
[[accounts]]
id = "alice"
[[steps]]
goto = "http://127.0.0.1:9/"
[[steps]]
wait_ms = -1
[[steps]]
click = 3
""", "dupes.toml")
    result = warmup("validate", str(path))
    assert result.returncode == 2, result.stderr
    where = f"warmup: task file {path}"
    assert lines(result.stderr) == [
        f"{where}: duplicate account id 'alice' (accounts[0] and accounts[1])",
        f"{where}: step 2 (wait_ms): wait_ms must be from 0 to 2147483647, not -1",
        f"{where}: step 3 (click): click must be a selector (a string), not 3",
        f"{where}: 3 problems",
    ]


@pytest.mark.parametrize(("text", "expected"), [
    (None, "no such file"),
    ("id = [", "not valid TOML"),
    ('id = "x"\n[[accounts]]\nid = "a"\n', "no steps"),
])
def test_a_file_that_cannot_be_checked_in_parts_gives_its_one_problem(work: Workdir, text: str | None,
                                                                       expected: str) -> None:
    path = work.root / "t.toml"
    if text is not None:
        path.write_text(text)
    result = warmup("validate", str(path))
    assert result.returncode == 2
    assert len(lines(result.stderr)) == 1 and expected in result.stderr and "Traceback" not in result.stderr


@pytest.mark.browser
def test_browser_checks_every_selector_and_names_the_bad_one_with_its_step(work: Workdir) -> None:
    good = warmup("validate", "--browser", str(work.task(GOOD)))
    assert good.returncode == 0, good.stderr
    # 2 renderings of ${account.who} (CSS and XPath), text=, and a chained selector: 4 asked of Chromium
    assert good.stdout.strip().endswith("4 steps, 4 selectors valid in Chromium")

    path = work.task(BAD, "bad.toml")
    bad = warmup("validate", "--browser", str(path))
    assert bad.returncode == 2
    problems = lines(bad.stderr)
    assert problems[-1] == f"warmup: task file {path}: 6 problems"
    shown = [p for p in problems if "step 7" in p]
    assert len(shown) == 1 and shown[0].startswith(f"warmup: task file {path}: step 7 (hover): selector 'div[' is "
                                                   "not valid: ")
    assert "while parsing css selector" in shown[0]


@pytest.mark.browser
def test_browser_check_of_selectors_per_account_never_prints_a_secret(work: Workdir) -> None:
    secret = "Sentinel-Validate-7781"
    path = work.task("""
[[accounts]]
id = "alice"
vars = { area = "main" }
[[steps]]
goto = "http://127.0.0.1:9/"
[[steps]]
wait_for = "${account.area}"
[[steps]]
click = "div[data-token=${env.WARMUP_TEST_SECRET_H5}"
""")
    result = warmup("validate", "--browser", str(path), env=cli_env(WARMUP_TEST_SECRET_H5=secret))
    assert result.returncode == 2
    assert secret not in result.stdout + result.stderr
    assert lines(result.stderr) == [
        f"warmup: task file {path}: step 3 (click): selector 'div[data-token=${{env.WARMUP_TEST_SECRET_H5}}' is "
        "not valid: " + lines(result.stderr)[0].split("is not valid: ", 1)[1]
    ]
    assert "***" in result.stderr  # Playwright quoted the rendered selector: the secret in it was hidden


def test_no_browser_for_browser_still_lists_the_tasks_problems(work: Workdir) -> None:
    path = work.task(BAD)
    result = warmup("validate", "--browser", "--browser-path", str(work.root / "no-chromium"), str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    found = lines(result.stderr)
    assert len(found) == 7 and found[-2] == f"warmup: task file {path}: 5 problems"
    assert found[-1] == f"warmup: --browser: --browser-path: no such file: {work.root / 'no-chromium'}"
