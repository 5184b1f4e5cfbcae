"""Issue 11's actions and checks: select, check/uncheck, upload, wait_for_url, evaluate, save_state,
expect_url, the text checks' ``ignore_case`` / ``regex``, their load-time checks, and error lines
that quote where a Playwright call stood when it timed out (the last line of its call log).

Real Chromium against a small site served by this file (``action_site``) on 127.0.0.1; the runs go
through the CLI as a user runs them, a few checks call ``perform`` on a real page directly.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from conftest import Workdir, warmup
from playwright.async_api import Page, async_playwright
from serving import HtmlHandler, serving

from warmup.browser import find_browser
from warmup.errors import UsageError
from warmup.runner.actions import BASE_URL_KEY, StepFailed, describe_error, perform
from warmup.tasks import load_task

pytestmark = pytest.mark.browser


def _page(title: str, body: str) -> bytes:
    head = f"<meta charset='utf-8'><title>{title}</title>"
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>".encode()


# The form shows its state in #out: the chosen colour, the checkbox, and each uploaded file's name and text.
FORM = _page("Form", """
<select id="color"><option value="">-</option><option value="r">Red</option><option value="g">Green</option></select>
<label><input id="agree" type="checkbox"> I agree</label>
<input id="file" type="file" multiple>
<p id="out"></p>
<script>
async function show() {
  const files = await Promise.all([...document.querySelector('#file').files].map(
    async f => f.name + ':' + (await f.text()).trim()));
  document.querySelector('#out').textContent = 'color=' + document.querySelector('#color').value +
    ' agree=' + document.querySelector('#agree').checked + ' files=' + files.join(',');
}
for (const id of ['color', 'agree', 'file']) document.getElementById(id).addEventListener('change', show);
</script>""")
# Django admin's header: the text is "Welcome, alice." but CSS shows it uppercased.
TOOLS = _page("Site administration | Django site admin",
              "<div id='user-tools' style='text-transform: uppercase'>Welcome, <strong>alice</strong>.</div>")
# A page that moves on by itself (as after a script's redirect): wait_for_url waits for it.
HOP = _page("Hop", "<script>setTimeout(() => { location.href = '/landed'; }, 50);</script>")
# A login form whose POST never gets an answer (until the test ends).
POST_FORM = _page("Sign in", "<form method='post' action='/never'><input name='u' value='x'>"
                             "<button id='go' type='submit'>Log in</button></form>")


class _Handler(HtmlHandler):
    server: _ActionSite

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        path = urlsplit(self.path).path
        pages = {"/form": FORM, "/tools": TOOLS, "/hop": HOP, "/post-form": POST_FORM,
                 "/landed": _page("Landed", "<p id='landed'>here</p>"),
                 "/admin/login/": _page("Log in | Django site admin", "<p>log in</p>")}
        if path == "/admin/":
            self._send(302, b"", {"Location": "/admin/login/?next=/admin/"})
        elif path in pages:
            self._send(200, pages[path])
        else:
            self._send(404, _page("Not found", "<p>not found</p>"))

    def do_POST(self) -> None:  # noqa: N802
        self.server.posted.set()
        self.server.release.wait(60)  # never answers while the test looks
        self._send(200, _page("Late", "<p>late</p>"))


class _ActionSite(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.release = threading.Event()
        self.posted = threading.Event()


@pytest.fixture
def action_site() -> Iterator[_ActionSite]:
    server = _ActionSite()
    with serving(server):
        try:
            yield server
        finally:
            server.release.set()  # (a handler held on purpose lets go, so the server can shut down)


def _base(server: _ActionSite) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _steps(work: Workdir) -> dict[int, dict[str, Any]]:
    """The last step_finished of each step index."""
    return {e["index"]: e for e in work.events() if e["type"] == "step_finished"}


# -- the new actions, through the CLI -------------------------------------------------------------
def test_select_check_uncheck_upload_and_evaluate_act_on_the_page(action_site: _ActionSite, work: Workdir) -> None:
    (work.root / "files").mkdir()
    (work.root / "files" / "a.txt").write_text("alpha\n")
    (work.root / "b.txt").write_text("beta\n")
    task = work.task(f"""
base_url = "{_base(action_site)}/"
[[accounts]]
id = "alice"
vars = {{ colour = "g" }}

[[steps]]
goto = "form"
[[steps]]
select = "#color"
value = "${{account.colour}}"
[[steps]]
check = "#agree"
[[steps]]
upload = "#file"
files = ["files/a.txt", "b.txt"]
[[steps]]
expect_text = {{ selector = "#out", text = "color=g agree=true files=a.txt:alpha,b.txt:beta" }}
[[steps]]
select = "#color"
label = "Red"
[[steps]]
uncheck = "#agree"
[[steps]]
upload = "#file"
files = "b.txt"
[[steps]]
expect_text = {{ selector = "#out", text = "color=r agree=false files=b.txt:beta" }}
[[steps]]
evaluate = "document.title = 'Changed by ' + document.querySelector('#color').value"
[[steps]]
expect_title = "Changed by r"
""")
    result = warmup(*work.run_args(task))
    assert result.returncode == 0, (result.stderr, _steps(work))
    steps = _steps(work)
    assert len(steps) == 11 and all(e["ok"] for e in steps.values()), steps


def test_a_select_of_a_missing_option_and_a_check_of_a_non_checkbox_fail_the_step(
    action_site: _ActionSite, work: Workdir
) -> None:
    task = work.task(f"""
[[accounts]]
id = "alice"
[[steps]]
goto = "{_base(action_site)}/form"
[[steps]]
select = "#color"
label = "Blue"
timeout_ms = 500
optional = true
[[steps]]
check = "#out"
timeout_ms = 500
optional = true
""")
    result = warmup(*work.run_args(task))
    assert result.returncode == 0, result.stderr
    steps = _steps(work)
    assert steps[1]["ok"] is False and "Timeout 500ms exceeded" in steps[1]["error"], steps[1]
    assert steps[2]["ok"] is False and "checkbox" in steps[2]["error"].lower(), steps[2]


def test_text_checks_ignore_case_and_regex_on_the_rendered_uppercased_text(
    action_site: _ActionSite, work: Workdir
) -> None:
    task = work.task(f"""
[[accounts]]
id = "alice"
vars = {{ user = "alice" }}
[[steps]]
goto = "{_base(action_site)}/tools"
[[steps]]
expect_text = {{ selector = "#user-tools", text = "welcome, ${{account.user}}", ignore_case = true }}
[[steps]]
expect_text = {{ selector = "#user-tools", text = "welcome, alice" }}
timeout_ms = 300
optional = true
[[steps]]
expect_text = {{ selector = "#user-tools", text = '^WELCOME, \\w+\\.$', regex = true }}
[[steps]]
expect_text = {{ selector = "#user-tools", text = '^welcome, a', regex = true, ignore_case = true }}
[[steps]]
expect_title = {{ text = "SITE ADMIN", ignore_case = true }}
[[steps]]
expect_title = {{ text = '^Site administration \\| Django', regex = true }}
[[steps]]
expect_title = {{ text = '^site administration', regex = true }}
timeout_ms = 300
optional = true
""")
    result = warmup(*work.run_args(task))
    assert result.returncode == 0, (result.stderr, _steps(work))
    steps = _steps(work)
    assert [i for i, e in steps.items() if not e["ok"]] == [2, 7], steps
    # inner_text is what a person sees: CSS uppercased it, so the case-sensitive check fails and says so
    assert steps[2]["error"] == ("the text of '#user-tools' is 'WELCOME, ALICE.', which does not contain "
                                 "'welcome, alice' after 300 ms"), steps[2]
    assert steps[7]["error"] == ("the title 'Site administration | Django site admin' does not match the "
                                 "regular expression '^site administration' after 300 ms"), steps[7]


def test_expect_url_and_wait_for_url_with_globs_regexes_and_the_base_url(
    action_site: _ActionSite, work: Workdir
) -> None:
    base = _base(action_site)
    task = work.task(f"""
base_url = "{base}/"
[[accounts]]
id = "alice"
[[steps]]
goto = "admin/"
[[steps]]
expect_url = "/admin/"
timeout_ms = 300
optional = true
[[steps]]
expect_url = "/admin/login/**"
[[steps]]
expect_url = 're:/admin/login/\\?next=/admin/$'
[[steps]]
goto = "hop"
[[steps]]
wait_for_url = "/landed"
[[steps]]
expect_url = "http://127.0.0.1:*/{{landed,elsewhere}}"
[[steps]]
wait_for_url = "re:/never$"
timeout_ms = 300
optional = true
""")
    result = warmup(*work.run_args(task))
    assert result.returncode == 0, (result.stderr, _steps(work))
    steps = _steps(work)
    assert [i for i, e in steps.items() if not e["ok"]] == [1, 7], steps
    # the redirect landed back on the login page: the message quotes where the page really is
    assert steps[1]["error"] == (f"the URL is '{base}/admin/login/?next=/admin/', which does not match '/admin/' "
                                 "after 300 ms"), steps[1]
    assert steps[7]["error"] == f"the URL is '{base}/landed', which does not match 're:/never$' after 300 ms"


def test_a_click_that_times_out_waiting_for_its_navigation_says_so(action_site: _ActionSite, work: Workdir) -> None:
    """The login POST never answers: the error quotes the call log's last line, not "waiting for locator"."""
    task = work.task(f"""
[[accounts]]
id = "alice"
[[steps]]
goto = "{_base(action_site)}/post-form"
[[steps]]
click = "#go"
timeout_ms = 3000
""")
    result = warmup(*work.run_args(task))
    assert result.returncode == 1, result.stderr
    assert action_site.posted.is_set()  # the click did happen: the POST reached the server
    error = _steps(work)[1]["error"]
    assert error == "Timeout 3000ms exceeded (waiting for scheduled navigations to finish)", error


# -- load-time checks: one line, exit 2, before any browser starts ---------------------------------
BAD_STEPS = [
    ('select = "#c"\nvalue = "a"\nlabel = "A"', "step 1 (select): select takes value or label, not both"),
    ('select = "#c"', "step 1 (select): select needs value or label (the option to choose)"),
    ('select = ""\nvalue = "a"', "step 1 (select): select must not be empty"),
    ('check = ""', "step 1 (check): check must not be empty"),
    ('uncheck = ""', "step 1 (uncheck): uncheck must not be empty"),
    ('upload = "#f"\nfiles = []', "step 1 (upload): upload needs at least one file in files"),
    ('upload = "#f"', "step 1 (upload): missing field 'files'"),
    ('upload = "#f"\nfiles = ["a.txt", 3]', "step 1 (upload): files[1] must be a string (a path), not 3"),
    ('upload = "#f"\nfiles = "${account.id}.txt"', "step 1 (upload): the file '${account.id}.txt' cannot use ${...}"),
    ('upload = "#f"\nfiles = "nope.txt"', re.compile(r"step 1 \(upload\): no file '.*/nope\.txt' to upload$")),
    ('upload = "#f"\nfiles = "."', re.compile(r"step 1 \(upload\): '/.*' is a folder, not a file to upload$")),
    ('wait_for_url = ""', "step 1 (wait_for_url): wait_for_url: the URL pattern is empty"),
    ('wait_for_url = "/a/{b,c"', "step 1 (wait_for_url): wait_for_url: the glob '/a/{b,c' has unbalanced or nested"),
    ('expect_url = "re:/a/("', "step 1 (expect_url): expect_url: 're:/a/(' is not a valid regular expression"),
    ('expect_url = "/a/${account.id}/{x,y}"', None),  # a reference's braces are not the glob's
    ('evaluate = ""', "step 1 (evaluate): evaluate must not be empty"),
    ('save_state = false', "step 1 (save_state): save_state must be true"),
    ('save_state = "yes"', "step 1 (save_state): save_state must be true (true or false), not 'yes'"),
    ('expect_text = { selector = "#a", text = "(", regex = true }',
     "step 1 (expect_text): expect_text.text '(' is not a valid regular expression"),
    ('expect_text = { selector = "#a", text = "x", ignore_case = "yes" }',
     "step 1 (expect_text): expect_text.ignore_case must be true or false, not 'yes'"),
    ('expect_text = { selector = "", text = "x" }', "step 1 (expect_text): expect_text.selector must not be empty"),
    ('expect_title = { text = "x", case = true }',
     "step 1 (expect_title): unknown field 'case' in expect_title (use text, ignore_case, regex)"),
    ('expect_title = { text = "[", regex = true }',
     "step 1 (expect_title): expect_title.text '[' is not a valid regular expression"),
    ('expect_title = { ignore_case = true }', "step 1 (expect_title): expect_title needs 'text'"),
]


@pytest.mark.parametrize(("step", "expected"), BAD_STEPS, ids=[s.split("\n")[0][:30] for s, _ in BAD_STEPS])
def test_each_new_action_is_checked_at_load(tmp_path: Path, step: str, expected: str | re.Pattern[str] | None) -> None:
    path = tmp_path / "t.toml"
    path.write_text(f'[[accounts]]\nid = "a"\n[[steps]]\n{step}\n')
    if expected is None:
        load_task(path)
        return
    with pytest.raises(UsageError) as caught:
        load_task(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"task file {path}: "), message
    if isinstance(expected, str):
        assert expected in message, message
    else:
        assert expected.search(message), message


def test_a_bad_step_is_one_line_and_exit_2_from_the_cli(work: Workdir) -> None:
    task = work.task('[[accounts]]\nid = "a"\n[[steps]]\ngoto = "http://127.0.0.1:9/"\n'
                     '[[steps]]\nupload = "#f"\nfiles = ["missing.pdf"]\n')
    result = warmup(*work.run_args(task))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].endswith(f"task file {task}: step 2 (upload): no file '{work.root}/missing.pdf' to upload")
    assert work.events() == []


def test_the_text_checks_options_are_recorded_as_written_and_carried_as_fields(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('storage_state = "s.json"\n[[accounts]]\nid = "a"\n[[steps]]\n'
                    'expect_text = { selector = "#a", text = "x", ignore_case = true }\n'
                    '[[steps]]\nexpect_title = "plain"\n[[steps]]\nsave_state = true\n')
    task = load_task(path)
    assert task.steps[0].args == {"": {"selector": "#a", "text": "x"}, "ignore_case": True}
    assert task.steps[0].raw == {"expect_text": {"selector": "#a", "text": "x", "ignore_case": True}}
    assert task.steps[1].args == {"": "plain"}
    assert task.steps[2].action == "save_state"


# -- perform on a real page -----------------------------------------------------------------------
def _on_page(url: str, check: Callable[[Page], Awaitable[None]]) -> None:
    async def main() -> None:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=find_browser(None, headless=True))
            try:
                page = await browser.new_page()
                await page.goto(url)
                await check(page)
            finally:
                await browser.close()

    asyncio.run(main())


def test_perform_evaluate_returns_a_json_value_and_honours_its_timeout(
    action_site: _ActionSite, tmp_path: Path
) -> None:
    async def check(page: Page) -> None:
        result = await perform(page, "evaluate", {"": "Promise.resolve({n: 1, s: document.title, d: new Date(0), "
                                                      "bad: NaN, big: 2n ** 70n, list: [1, [2]]})"},
                               1000, base_dir=tmp_path)
        assert result.value == {"n": 1, "s": "Form", "d": "1970-01-01T00:00:00+00:00", "bad": None,
                                "big": str(2**70), "list": [1, [2]]}
        assert (await perform(page, "evaluate", {"": "undefined"}, 1000, base_dir=tmp_path)).value is None
        with pytest.raises(StepFailed, match=r"^the expression did not finish in 300 ms$"):
            await perform(page, "evaluate", {"": "new Promise(() => {})"}, 300, base_dir=tmp_path)
        try:
            await perform(page, "evaluate", {"": "(() => { throw new Error('no such thing') })()"}, 1000,
                          base_dir=tmp_path)
        except Exception as exc:  # noqa: BLE001 (the message is the point)
            assert "no such thing" in describe_error(exc), describe_error(exc)
        else:
            raise AssertionError("a throwing expression must fail the step")

    _on_page(f"{_base(action_site)}/form", check)


def test_perform_upload_of_a_file_gone_since_load_and_a_relative_pattern_without_base(
    action_site: _ActionSite, tmp_path: Path
) -> None:
    async def check(page: Page) -> None:
        with pytest.raises(StepFailed, match=f"^no file '{re.escape(str(tmp_path))}/gone.txt' to upload$"):
            await perform(page, "upload", {"": "#file", "files": ["gone.txt"]}, 1000, base_dir=tmp_path)
        with pytest.raises(StepFailed, match=r"which does not match '/form' \(a relative pattern, and the account "
                                             r"has no base_url\) after 200 ms$"):
            await perform(page, "expect_url", {"": "/form", BASE_URL_KEY: None}, 200, base_dir=tmp_path)
        await perform(page, "expect_url", {"": "/form", BASE_URL_KEY: _base(action_site) + "/x/"}, 200,
                      base_dir=tmp_path)
        with pytest.raises(StepFailed, match="is not a valid regular expression"):  # invalid once rendered
            await perform(page, "expect_title", {"": "(", "regex": True}, 200, base_dir=tmp_path)

    _on_page(f"{_base(action_site)}/form", check)


def test_perform_refuses_save_state_which_is_the_engines() -> None:
    with pytest.raises(RuntimeError, match="save_state is done by the engine"):
        asyncio.run(perform(cast(Page, None), "save_state", {"": True}, 1000, base_dir=Path(".")))


# -- describe_error on Playwright's call logs ----------------------------------------------------
def test_describe_error_skips_retry_noise_and_keeps_the_cause() -> None:
    from playwright._impl._errors import TimeoutError as PwTimeout

    log = ('Page.click: Timeout 1000ms exceeded.\nCall log:\n  - waiting for locator("#b2")\n'
           '    - locator resolved to <button id="b2">x</button>\n  - attempting click action\n'
           '    2 × waiting for element to be visible, enabled and stable\n'
           '      - element is visible, enabled and stable\n'
           '      - <div id="ov"></div> intercepts pointer events\n    - retrying click action\n'
           '      - waiting 500ms\n')
    exc = PwTimeout(log)
    assert describe_error(exc) == 'Timeout 1000ms exceeded (<div id="ov"></div> intercepts pointer events)'
    only = PwTimeout('Page.click: Timeout 1000ms exceeded.\nCall log:\n  - waiting for locator("#nope")\n')
    assert describe_error(only) == 'Timeout 1000ms exceeded (waiting for locator("#nope"))'
