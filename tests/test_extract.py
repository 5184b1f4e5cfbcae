"""Values from the page: ``extract`` records a value in ``step_finished.extracted`` and later steps use
it as ``${page.NAME}``. Real Chromium, the CLI, the admin-like site of ``admin_site``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from admin_site import CSRF, GOOD_PASSWORD, admin_site
from conftest import Workdir, warmup

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def admin() -> Iterator[str]:
    with admin_site() as base:
        yield base


def steps_of(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "step_finished"]


def test_extracted_values_are_recorded_and_used_by_later_steps(admin: str, work: Workdir) -> None:
    task = work.task(f"""
base_url = "{admin}"
[[accounts]]
id = "a"
vars = {{ password = "{GOOD_PASSWORD}" }}

[[steps]]
goto = "/profile"
extract = {{ selector = "#me", attribute = "href", as = "me" }}
[[steps]]
extract = {{ selector = "#me", as = "name" }}
[[steps]]
extract = {{ selector = "#leak", as = "leak" }}
[[steps]]
goto = "${{page.me}}"
[[steps]]
expect_text = {{ selector = "#uid", text = "User 42" }}
[[steps]]
goto = "/echo?who=${{page.name}}&from=${{page.me}}"
[[steps]]
expect_text = {{ selector = "#q", text = "who=Alice&from=/users/42/" }}
[[steps]]
goto = "/profile"
[[steps]]
extract = {{ selector = "#me", attribute = "data-missing", as = "missing" }}
optional = true
timeout_ms = 2000
""")
    result = warmup(*work.run_args(task))
    assert result.returncode == 0, result.stderr
    steps = steps_of(work.events())
    assert [s.get("extracted") for s in steps[:3]] == [{"me": "/users/42/"}, {"name": "Alice"}, {"leak": "***"}]
    assert [s["action"] for s in steps[:3]] == ["goto", "extract", "extract"]
    assert all(s["ok"] for s in steps[:8]), steps
    missing = steps[8]
    assert not missing["ok"] and "extracted" not in missing
    assert missing["error"] == "extract: '#me' has no attribute 'data-missing'"
    assert GOOD_PASSWORD not in work.log.read_text()  # a page value is free text: scrubbed like any


def test_a_value_whose_step_was_skipped_fails_the_step_that_uses_it(admin: str, work: Workdir) -> None:
    task = work.task(f"""
base_url = "{admin}"
[[accounts]]
id = "a"
[[steps]]
goto = "/profile"
[[steps]]
extract = {{ selector = "#me", as = "name" }}
when = {{ visible = "#hidden" }}
[[steps]]
goto = "/echo?${{page.name}}"
""")
    result = warmup(*work.run_args(task))
    assert result.returncode == 1, result.stderr
    steps = steps_of(work.events())
    assert steps[1].get("skipped") is True
    assert not steps[2]["ok"]
    assert steps[2]["error"].startswith("${page.name}: no value extracted as 'name' yet in this attempt")


def test_extract_takes_an_evaluate_steps_result(admin: str, work: Workdir) -> None:
    task = work.task(f"""
base_url = "{admin}"
[[accounts]]
id = "a"
[[steps]]
goto = "/profile"
[[steps]]
evaluate = "document.title + ' of ' + location.pathname"
extract = {{ as = "where" }}
[[steps]]
evaluate = "({{n: 2, list: [1, 'x']}})"
extract = {{ as = "obj" }}
[[steps]]
goto = "/echo?${{page.where}}"
[[steps]]
expect_text = {{ selector = "#q", text = "Profile of /profile" }}
""")
    result = warmup(*work.run_args(task))
    assert result.returncode == 0, result.stderr
    steps = steps_of(work.events())
    assert steps[1]["extracted"] == {"where": "Profile of /profile"}
    assert steps[2]["extracted"] == {"obj": '{"n":2,"list":[1,"x"]}'}


@pytest.mark.parametrize(("steps", "message"), [
    ('[[steps]]\ngoto = "http://x/${page.nope}"',
     "step 1 (goto): ${page.nope} is not extracted by an earlier step"),
    ('[[steps]]\ngoto = "http://x/${page.me}"\nextract = { selector = "#me", as = "me" }',
     "step 1 (goto): ${page.me} is not extracted by an earlier step"),
    ('[[steps]]\nextract = { selector = "#me", as = "me" }\n[[steps]]\nscreenshot = "shot-${page.me}"',
     "step 2 (screenshot): a screenshot name cannot use ${page.me}"),
    ('[[steps]]\nclick = "#a"\nextract = { as = "x" }', "step 1 (click): extract: missing 'selector'"),
    ('[[steps]]\nextract = { selector = "#a" }', "step 1 (extract): extract: missing 'as'"),
    ('[[steps]]\nextract = { selector = "#a", as = "not a name" }',
     "step 1 (extract): extract.as 'not a name' is not a variable name"),
    ('[[steps]]\nextract = { selector = "#a", as = "x", text = true }',
     "step 1 (extract): extract: unknown field 'text'"),
    ('[[steps]]\nextract = { selector = "#a", as = "x" }\nvalue = "y"', "step 1 (extract): unknown field 'value'"),
    ('[[steps]]\nextract = "#a"', "step 1 (extract): extract must be a table, not '#a'"),
    ('[[steps]]\ngroup = "g"\nwhen = { visible = "${page.x}" }\n'
     'steps = [ { extract = { selector = "#a", as = "x" } } ]',
     "step 1 (extract) in group 'g': ${page.x} is not extracted by an earlier step"),
])
def test_bad_extracts_and_page_references_are_refused_with_one_line(
    work: Workdir, steps: str, message: str
) -> None:
    task = work.task(f'[[accounts]]\nid = "a"\n{steps}\n')
    result = warmup(*work.run_args(task))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_a_value_with_a_credential_name_or_a_cookie_in_it_is_a_secret(admin: str, work: Workdir) -> None:
    """Recorded as ***, and hidden from every later message of the attempt: never in the log."""
    task = work.task(f"""
base_url = "{admin}"
[[accounts]]
id = "a"
vars = {{ password = "{GOOD_PASSWORD}" }}

[[steps]]
goto = "/admin/login/"
[[steps]]
fill = "#id_username"
value = "alice-7f3k9"
[[steps]]
fill = "#id_password"
value = "${{account.password}}"
[[steps]]
click = "#login"
[[steps]]
goto = "/profile"
extract = {{ selector = "input[name=csrfmiddlewaretoken]", attribute = "value", as = "csrf_token" }}
[[steps]]
evaluate = "document.cookie"
extract = {{ as = "jar" }}
[[steps]]
extract = {{ selector = "#me", as = "name" }}
[[steps]]
evaluate = "'/form?t=' + document.querySelector('input[name=csrfmiddlewaretoken]').value"
extract = {{ as = "link" }}
[[steps]]
goto = "/nope/${{page.csrf_token}}/${{page.jar}}"
""")
    result = warmup(*work.run_args(task))
    assert result.returncode == 1
    steps = steps_of(work.events())
    assert [s.get("extracted") for s in steps[4:8]] == [
        {"csrf_token": "***"}, {"jar": "***"}, {"name": "Alice"}, {"link": "/form?t=***"}]
    assert steps[8]["error"].startswith("HTTP 404") and "/nope/***/***" in steps[8]["error"], steps[8]["error"]
    for text in (work.log.read_text(), result.stdout, result.stderr):
        assert CSRF not in text and "sessionid=" not in text
