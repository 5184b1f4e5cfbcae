"""Conditions (``when`` / ``unless``), groups, ``fail_if`` and ``save_state``: real Chromium, the CLI.

The site (``admin_site``) is a Django-admin-like login: the issue's users needed "log in only if
needed" that costs nothing when the saved state is still signed in, a refused login that fails at
once with the site's message, and a state saved right after login although the task logs out.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import orjson
import pytest
from admin_site import GOOD_PASSWORD, REFUSED, admin_site
from conftest import Workdir, warmup

pytestmark = pytest.mark.browser

STEP_TIMEOUT_MS = 15_000  # far above what any step here needs: a step near it would be a wasted wait


@pytest.fixture(scope="module")
def admin() -> Iterator[str]:
    with admin_site() as base:
        yield base


def steps_of(events: list[dict], account: str) -> list[dict]:
    return [e for e in events if e["type"] == "step_finished" and e["account_id"] == account]


def finished(events: list[dict], account: str) -> dict:
    return [e for e in events if e["type"] == "account_finished" and e["account_id"] == account][-1]


LOGIN_TASK = """
base_url = "{base}"
storage_state = "state/${{account.id}}.json"
timeout_ms = {timeout}

[[accounts]]
id = "alice"
vars = {{ password = "{password}" }}

[[steps]]
goto = "/admin/"

[[steps]]
group = "login"
when = {{ visible = "#id_username" }}
steps = [
  {{ fill = "#id_username", value = "${{account.id}}" }},
  {{ fill = "#id_password", value = "${{account.password}}" }},
  {{ click = "#login", fail_if = ".errornote" }},
]

[[steps]]
wait_for = "#user-tools"

[[steps]]
save_state = true

[[steps]]
click = "#logout"

[[steps]]
wait_for = "#logged-out"
"""


def test_login_if_needed_signed_out_then_signed_in_with_state_saved_before_logout(admin: str, work: Workdir) -> None:
    task = work.task(LOGIN_TASK.format(base=admin, timeout=STEP_TIMEOUT_MS, password=GOOD_PASSWORD))
    state = work.root / "state" / "alice.json"

    first = warmup(*work.run_args(task))
    assert first.returncode == 0, first.stderr
    events = work.events()
    steps = steps_of(events, "alice")
    assert [(s["index"], s["action"], s["ok"], s.get("skipped", False)) for s in steps] == [
        (0, "goto", True, False), (1, "fill", True, False), (2, "fill", True, False), (3, "click", True, False),
        (4, "wait_for", True, False), (5, "save_state", True, False), (6, "click", True, False),
        (7, "wait_for", True, False),
    ]
    # saved at save_state, signed in; the logout at the end did not overwrite it
    cookies = {c["name"]: c["value"] for c in orjson.loads(state.read_bytes())["cookies"]}
    assert cookies.get("sessionid") == "alice"

    second = warmup(*work.run_args(task))
    assert second.returncode == 0, second.stderr
    run_id = [e for e in work.events() if e["type"] == "run_started"][-1]["run_id"]
    events = [e for e in work.events() if e.get("run_id") == run_id]
    steps = steps_of(events, "alice")
    skipped = [s for s in steps if s.get("skipped")]
    # the whole group is recorded skipped, one event per step, and it cost no wait at all
    assert [(s["index"], s["action"], s["ok"], s["error"]) for s in skipped] == [
        (1, "fill", True, None), (2, "fill", True, None), (3, "click", True, None),
    ]
    assert all(s["duration_ms"] < 1_000 for s in skipped), skipped
    assert [s["index"] for s in steps if not s.get("skipped")] == [0, 4, 5, 6, 7]
    assert all(s["ok"] for s in steps)
    account = finished(events, "alice")
    assert (account["status"], account["steps_ok"], account["steps_failed"]) == ("COMPLETED", 5, 0)
    assert "5/8 steps (3 skipped)" in second.stderr + second.stdout

    # the core tables count a skipped step as neither ok nor failed, and their log says it was skipped
    conn = sqlite3.connect(work.db)
    ok, failed, log = conn.execute(
        "SELECT steps_ok, steps_failed, log FROM run_accounts WHERE run_id = ?", (run_id,)).fetchone()
    conn.close()
    assert (ok, failed) == (5, 0)
    assert "step 2 fill skipped" in log and "step 4 click skipped" in log

    # `warmup show` (from the log) counts them apart too
    shown = warmup("show", run_id, "--db", str(work.db), "--log", str(work.log), "--json")
    assert shown.returncode == 0, shown.stderr
    detail = orjson.loads(shown.stdout)["accounts"][0]["attempts_detail"][0]
    assert (detail["steps_ok"], detail["steps_failed"], detail["steps_skipped"]) == (5, 0, 3)

    table = warmup("show", run_id, "--db", str(work.db), "--log", str(work.log))
    assert table.returncode == 0 and "5 (+3 skipped)" in table.stdout, table.stdout

    tail = warmup("tail", "--log", str(work.log), "--run", run_id, "--type", "step_finished", "-n", "all")
    assert tail.returncode == 0, tail.stderr
    assert [line.split(" step ", 1)[1].split()[:3] for line in tail.stdout.splitlines()][:4] == [
        ["1", "goto", "ok"], ["2", "fill", "skipped"], ["3", "fill", "skipped"], ["4", "click", "skipped"],
    ], tail.stdout

    # the steps projection keeps every step, skipped ones marked
    projected = warmup("project", "--log", str(work.log), "--db", str(work.db), "--projection", "steps")
    assert projected.returncode == 0, projected.stderr
    conn = sqlite3.connect(work.db)
    rows = conn.execute(
        "SELECT step_index, ok, skipped FROM steps WHERE run_id = ? ORDER BY step_index", (run_id,)).fetchall()
    conn.close()
    assert rows == [(0, 1, 0), (1, 1, 1), (2, 1, 1), (3, 1, 1), (4, 1, 0), (5, 1, 0), (6, 1, 0), (7, 1, 0)]


def test_fail_if_fails_a_refused_login_at_once_with_the_sites_message(admin: str, work: Workdir) -> None:
    task = work.task(LOGIN_TASK.format(base=admin, timeout=STEP_TIMEOUT_MS, password="wrong-pass"))
    result = warmup(*work.run_args(task))
    assert result.returncode == 1, result.stderr
    events = work.events()
    click = steps_of(events, "alice")[-1]
    assert (click["index"], click["action"], click["ok"]) == (3, "click", False)
    assert click["error"] == f"fail_if '.errornote' appeared: '{REFUSED}'"
    assert click["duration_ms"] < STEP_TIMEOUT_MS / 5, click  # failed at once, not at the timeout
    account = finished(events, "alice")
    assert account["error"] == f"step 4 (click) in group 'login': {click['error']}"
    assert "wrong-pass" not in work.log.read_text()  # (a credential variable: scrubbed as ever)
    assert not (work.root / "state" / "alice.json").exists()  # never reached save_state


def test_fail_if_cuts_a_waiting_step_short_when_the_element_shows_up(admin: str, work: Workdir) -> None:
    task = work.task(f"""
[[accounts]]
id = "a"
[[steps]]
goto = "{admin}late-error"
[[steps]]
wait_for = "#never"
fail_if = ".errornote"
timeout_ms = {STEP_TIMEOUT_MS}
""")
    result = warmup(*work.run_args(task))
    assert result.returncode == 1, result.stderr
    step = steps_of(work.events(), "a")[-1]
    assert step["error"] == "fail_if '.errornote' appeared: 'Server is busy, try later.'"
    assert step["duration_ms"] < STEP_TIMEOUT_MS / 5, step


def test_when_url_when_visible_and_unless(admin: str, work: Workdir) -> None:
    task = work.task(f"""
base_url = "{admin}"
[[accounts]]
id = "a"
[[steps]]
goto = "/profile"
[[steps]]
wait_for = "#me"
when = {{ url = "/profile" }}
[[steps]]
wait_for = "#nothing-here"
when = {{ url = "/elsewhere/**" }}
[[steps]]
wait_for = "#nothing-here"
when = {{ visible = "#hidden" }}
[[steps]]
wait_for = "#nothing-here"
unless = {{ visible = "#me" }}
[[steps]]
expect_title = "Profile"
unless = {{ url = "re:/users/[0-9]+/$" }}
[[steps]]
goto = "/users/7/"
when = {{ url = "re:/prof" }}
[[steps]]
wait_for = "#nothing-here"
unless = {{ url = "**/users/*/" }}
""")
    result = warmup(*work.run_args(task))
    assert result.returncode == 0, result.stderr
    steps = steps_of(work.events(), "a")
    assert [(s["index"] + 1, s.get("skipped", False)) for s in steps] == [
        (1, False), (2, False), (3, True), (4, True), (5, True), (6, False), (7, False), (8, True),
    ]
    assert all(s["ok"] and s["error"] is None for s in steps)


def test_a_condition_the_browser_refuses_fails_its_step_with_one_line(admin: str, work: Workdir) -> None:
    task = work.task(f"""
[[accounts]]
id = "a"
[[steps]]
goto = "{admin}profile"
[[steps]]
group = "maybe"
when = {{ visible = "#me >>> [" }}
steps = [ {{ wait_for = "#me", optional = true }}, {{ wait_for = "#nothing-here" }} ]
[[steps]]
group = "broken"
when = {{ visible = "#me >>> [" }}
steps = [ {{ wait_for = "#me" }} ]
""")
    result = warmup(*work.run_args(task))
    assert result.returncode == 1, result.stderr
    steps = steps_of(work.events(), "a")
    # an optional first step: it fails, the attempt goes on, and the rest of its group never runs unchecked
    assert [(s["index"], s["ok"], s.get("skipped", False)) for s in steps] == [
        (0, True, False), (1, False, False), (2, True, True), (3, False, False),
    ]
    assert steps[1]["error"].startswith("group 'maybe': condition: ")
    assert steps[3]["error"].startswith("group 'broken': condition: ")
    assert finished(work.events(), "a")["error"].startswith("step 4 (wait_for) in group 'broken': group 'broken'")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("steps", "message"), [
    ('[[steps]]\ngoto = "http://x/"\nwhen = { visible = "" }',
     "step 1 (goto): when.visible must be a non-empty string, not ''"),
    ('[[steps]]\ngoto = "http://x/"\nwhen = { shown = "#a" }',
     "step 1 (goto): unknown condition 'shown' in when"),
    ('[[steps]]\ngoto = "http://x/"\nunless = { url = "a", visible = "b" }',
     "step 1 (goto): unless must be one condition"),
    ('[[steps]]\ngoto = "http://x/"\nwhen = { url = "re:(" }',
     "step 1 (goto): when.url: 're:(' is not a valid regular expression"),
    ('[[steps]]\ngoto = "http://x/"\nwhen = "#a"', "step 1 (goto): when must be a table, not '#a'"),
    ('[[steps]]\ngoto = "http://x/"\n[[steps]]\ngroup = "g"\nsteps = [ { click = "#a" }, '
     '{ group = "h", steps = [ { click = "#b" } ] } ]',
     "step 3 in group 'g': a group cannot hold another group"),
    ('[[steps]]\ngroup = "g"\nsteps = []', "group 'g': steps must be a non-empty list of steps"),
    ('[[steps]]\ngroup = "g"\noptional = true\nsteps = [ { click = "#a" } ]',
     "group 'g': unknown field 'optional'"),
    ('[[steps]]\ngroup = "g"\nsteps = [ { click = "#a" }, { clack = "#b" } ]',
     "step 2 in group 'g': unknown action 'clack'"),
    ('[[steps]]\nclick = "#a"\nfail_if = ""', "step 1 (click): fail_if must be a selector, not empty"),
    ('[[steps]]\nsave_state = true', "step 1 (save_state): account 'a' has no storage_state to save to"),
    ('[[steps]]\nsave_state = false', "step 1 (save_state): save_state must be true"),
])
def test_bad_conditions_groups_and_save_state_are_refused_with_one_line(
    work: Workdir, steps: str, message: str
) -> None:
    task = work.task(f'[[accounts]]\nid = "a"\n{steps}\n')
    result = warmup(*work.run_args(task))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not work.log.exists() or not work.events()
