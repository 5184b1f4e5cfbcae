"""Load-time edges of the task format found in review: secrets behind a reference, URLs that are
not URLs, relative URLs with nothing to resolve them, credential-looking headers, and `validate`
on groups. Each is one line and exit 2 (or a secret kept out), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Workdir, cli_env, warmup

from warmup.tasks import load_task


def test_a_credential_variable_built_from_task_variables_is_hidden_as_rendered(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[vars]\npre = "abc"\n[[accounts]]\nid = "a"\nvars = { password = "${vars.pre}-hunter22" }\n'
                    '[[steps]]\ngoto = "http://127.0.0.1:9/${account.password}"\n')
    task = load_task(path, env={})
    assert "abc-hunter22" in task.secret_values()
    assert task.scrubber()("failed at http://127.0.0.1:9/abc-hunter22") == "failed at http://127.0.0.1:9/***"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('base_url = "http://[::1"\n', "base_url 'http://[::1' is not an absolute URL"),
        # the account variable holds a secret: the message quotes what was written, never the value
        ('base_url = "${account.base}"\n', "base_url '${account.base}' (as rendered) is not an absolute URL"),
        ('timezone_id = "${account.base}"\n', "unknown time zone '${account.base}' (as rendered)"),
        ('extra_http_headers = { "X-Auth" = "sk_live_abcdef" }\n', "extra_http_headers.X-Auth is a credential"),
        ('extra_http_headers = { "X-Session-Id" = "s-1234" }\n', "extra_http_headers.X-Session-Id is a credential"),
    ],
)
def test_bad_urls_and_settings_are_one_line_without_the_secret(work: Workdir, text: str, expected: str) -> None:
    secret = "hunter2-sekrit"
    task = work.task(text + '[[accounts]]\nid = "a"\nvars = { base = "${env.WARMUP_TEST_BASE}" }\n'
                     '[[steps]]\ngoto = "http://127.0.0.1:9/"\n')
    for command in (["validate", str(task)], work.run_args(task)):
        result = warmup(*command, env=cli_env(WARMUP_TEST_BASE=secret))
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr and secret not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not work.log.exists()


def test_a_relative_goto_needs_a_base_url(work: Workdir) -> None:
    task = work.task('[[accounts]]\nid = "a"\n[[steps]]\ngoto = "/feed"\n')
    result = warmup(*work.run_args(task))
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "step 1 (goto): '/feed' is a relative URL, and account 'a' has no base_url to resolve it against "
        "(set base_url, or write the whole URL)")
    ok = work.task('[[accounts]]\nid = "a"\nbase_url = "http://127.0.0.1:9/"\n[[steps]]\ngoto = "/feed"\n', "ok.toml")
    assert warmup("validate", str(ok)).returncode == 0


def test_validate_numbers_steps_after_a_bad_group_and_checks_group_conditions(work: Workdir) -> None:
    task = work.task('''
[[accounts]]
id = "a"
[[steps]]
group = "g"
steps = [ { wait_ms = 1 }, { wait_ms = 1 }, { click = 5 } ]
[[steps]]
click = "${account.nope}"
[[steps]]
group = "empty"
''')
    result = warmup("validate", str(task))
    assert result.returncode == 2
    lines = [line.split(": ", 2)[-1] for line in result.stderr.strip().splitlines()]
    assert lines == [
        "step 3 (click) in group 'g': click must be a selector (a string), not 5",
        "step 4 (click): ${account.nope} is not defined for account 'a'",
        "group 'empty': steps must be a non-empty list of steps, not nothing",
        "3 problems",
    ], result.stderr

    good = work.task('''
[[accounts]]
id = "a"
[[steps]]
group = "g"
when = { visible = "div[[" }
steps = [ { wait_ms = 1 } ]
''', "good.toml")
    result = warmup("validate", str(good), "--browser")
    assert result.returncode == 2
    assert "step 1 (wait_ms) in group 'g': group 'g' when.visible selector 'div[[' is not valid" in result.stderr


@pytest.mark.parametrize("field", ['expect_url = "/a/{x,y"', 'wait_for = "#x"\nwhen = { url = "/a/{x,y" }'])
def test_every_url_pattern_gets_the_same_check(work: Workdir, field: str) -> None:
    """One check of URL patterns (warmup.tasks.urls), for checks and conditions alike."""
    task = work.task(f'base_url = "http://127.0.0.1:9/"\n[[accounts]]\nid = "a"\n[[steps]]\n{field}\n')
    result = warmup("validate", str(task))
    assert result.returncode == 2
    assert "the glob '/a/{x,y' has unbalanced or nested { }" in result.stderr, result.stderr
