"""Python-scripted tasks (``script = "module:function"``): real Chromium, the test site, the CLI."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import Workdir, cli_env, warmup

pytestmark = pytest.mark.browser

WARM = '''
import asyncio


async def warm(page, account, step):
    async with step("open feed"):
        await page.goto(account.url("/feed"))
    async with step("like first post", optional=True):
        await page.click(".post >> nth=0 >> .like", timeout=300)
    async with step("more"):
        await page.click("#more")
        assert await page.title() == "Feed (more)", await page.title()
    async with step("greet " + account.vars["who"]):
        await page.goto(account.url("/echo?hello=" + account.vars["who"]))
'''


def task_text(site: str, script: str = "warm:warm", extra: str = "") -> str:
    return f"""
id = "scripted"
script = "{script}"
base_url = "{site}/"
timeout_ms = 5000
{extra}
[[accounts]]
id = "a1"
vars = {{ who = "ann" }}
[[accounts]]
id = "a2"
vars = {{ who = "bob" }}
"""


def steps_of(events: list[dict], account_id: str) -> list[dict]:
    return [e for e in events if e["type"] == "step_finished" and e["account_id"] == account_id]


def test_a_scripted_task_records_each_block_as_a_step(site: str, work: Workdir) -> None:
    (work.root / "warm.py").write_text(WARM)
    result = warmup(*work.run_args(work.task(task_text(site))))
    assert result.returncode == 0, result.stderr
    events = work.events()
    started = next(e for e in events if e["type"] == "run_started")
    assert started["task"]["script"] == "warm:warm" and started["steps"] == 0
    for account_id, who in (("a1", "ann"), ("a2", "bob")):
        steps = steps_of(events, account_id)
        assert [(s["index"], s["action"], s["name"], s["ok"], s["optional"]) for s in steps] == [
            (0, "script", "open feed", True, False),
            (1, "script", "like first post", False, True),
            (2, "script", "more", True, False),
            (3, "script", f"greet {who}", True, False),
        ]
        assert "Timeout 300ms exceeded" in steps[1]["error"] and steps[1]["url"] == f"{site}/feed"
        finished = [e for e in events if e["type"] == "account_finished" and e["account_id"] == account_id]
        assert [(f["status"], f["steps_ok"], f["steps_failed"]) for f in finished] == [("COMPLETED", 3, 1)]
    shown = warmup("show", "last", "--db", str(work.db), "--log", str(work.log))
    assert shown.returncode == 0, shown.stderr


def test_a_failed_required_step_fails_the_account_with_a_screenshot_and_a_retry(site: str, work: Workdir) -> None:
    (work.root / "warm.py").write_text('''
async def warm(page, account, step):
    async with step("open feed"):
        await page.goto(account.url("/feed"))
    try:
        async with step("find the like button", timeout_ms=400):
            await page.click(".like")
    except Exception:
        pass  # caught by the script: the account still fails
    async with step("never reached"):
        await page.goto(account.url("/feed"))
''')
    result = warmup(*work.run_args(work.task(task_text(site, extra="retries = 1"))))
    assert result.returncode == 1
    events = work.events()
    finished = [e for e in events if e["type"] == "account_finished" and e["account_id"] == "a1"]
    assert [(f["attempt"], f["status"], f["retrying"]) for f in finished] == [(1, "FAILED", True), (2, "FAILED", False)]
    assert finished[-1]["error"].startswith("step 2 (find the like button): ")
    assert [s["name"] for s in steps_of(events, "a1")] == ["open feed", "find the like button", "never reached"] * 2
    kinds = {(e["attempt"], e["kind"]) for e in events if e["type"] == "artifact_saved" and e["account_id"] == "a1"}
    assert {(1, "failure"), (2, "failure")} <= kinds


def test_a_step_timeout_and_an_error_outside_any_step(site: str, work: Workdir) -> None:
    (work.root / "slow.py").write_text('''
import asyncio


async def warm(page, account, step):
    async with step("wait too long", timeout_ms=300, optional=True):
        await asyncio.sleep(30)
    if account.id == "a2":
        raise RuntimeError("no feed for " + account.id)
''')
    began = time.monotonic()
    result = warmup(*work.run_args(work.task(task_text(site, script="slow:warm"))))
    assert time.monotonic() - began < 25
    assert result.returncode == 1
    events = work.events()
    assert steps_of(events, "a1")[0]["error"] == "timed out after 300 ms"
    a2 = [e for e in events if e["type"] == "account_finished" and e["account_id"] == "a2"][-1]
    assert a2["status"] == "FAILED"
    assert a2["error"] == "script (slow.py line 9): RuntimeError: no feed for a2"


def test_secrets_a_script_sees_are_scrubbed_from_the_log_and_output(site: str, work: Workdir) -> None:
    secret = "s3cret-Horse-77"
    (work.root / "leak.py").write_text('''
async def warm(page, account, step):
    async with step("sign in", optional=True):
        await page.goto(account.url("/echo?pw=" + account.vars["password"]))
        raise ValueError("refused: " + account.vars["password"])
    async with step("nested"):
        async with step("inner"):
            pass
''')
    task = work.task(task_text(site, script="leak:warm").replace(
        'vars = { who = "ann" }', 'vars = { who = "ann", password = "${env.WARMUP_TEST_PW}" }'))
    result = warmup(*work.run_args(task), env=cli_env(WARMUP_TEST_PW=secret))
    assert result.returncode == 1
    text = work.log.read_text()
    assert secret not in text and secret not in result.stdout + result.stderr
    steps = steps_of(work.events(), "a1")
    assert steps[0]["error"] == "ValueError: refused: ***"
    assert steps[1]["error"] == "RuntimeError: step('inner') inside step 2 (nested): steps do not nest"


@pytest.mark.parametrize(
    ("script", "files", "expected"),
    [
        ("warm", {}, "script 'warm' is not MODULE:FUNCTION"),
        ("nowhere:warm", {}, "script 'nowhere:warm': no module 'nowhere'"),
        ("warm:other", {"warm.py": "async def warm(page, account, step): pass\n"}, "warm has no function 'other'"),
        ("warm:warm", {"warm.py": "def warm(page, account, step): pass\n"}, "warm must be an async function"),
        ("warm:warm", {"warm.py": "async def warm(page): pass\n"}, "warm must take three arguments"),
        ("warm:warm", {"warm.py": "import nothing_here_at_all\n"},
         "importing warm failed: ModuleNotFoundError: No module named 'nothing_here_at_all'"),
        ("warm:warm", {"warm.py": "1/0\n"}, "importing warm failed: ZeroDivisionError: division by zero"),
        ("warm:warm", {"warm.py": "import sys\nsys.exit(0)\n"}, "importing warm failed: SystemExit: 0"),
    ],
)
def test_a_bad_script_reference_is_one_line_before_any_browser(
    work: Workdir, script: str, files: dict[str, str], expected: str
) -> None:
    for name, text in files.items():
        (work.root / name).write_text(text)
    task = work.task(task_text("http://127.0.0.1:9", script=script))
    result = warmup(*work.run_args(task), "--browser-path", "/nonexistent/chromium")
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not work.log.exists()


def test_script_and_steps_together_are_refused(work: Workdir) -> None:
    (work.root / "warm.py").write_text(WARM)
    task = work.task(task_text("http://127.0.0.1:9") + '\n[[steps]]\ngoto = "/feed"\n')
    result = warmup(*work.run_args(task))
    assert result.returncode == 2
    assert "give script or [[steps]], not both" in result.stderr


def test_a_resumed_scripted_run_finds_its_script(site: str, work: Workdir, tmp_path: Path) -> None:
    flag = work.root / "fail-a2"
    flag.write_text("")
    (work.root / "warm.py").write_text(f'''
from pathlib import Path


async def warm(page, account, step):
    async with step("open"):
        await page.goto(account.url("/feed"))
        if account.id == "a2" and Path({str(flag)!r}).exists():
            raise RuntimeError("not yet")
''')
    first = warmup(*work.run_args(work.task(task_text(site))))
    assert first.returncode == 1
    flag.unlink()
    again = warmup("run", "--resume", "last", "--log", str(work.log), "--db", str(work.db),
                   "--artifacts", str(work.artifacts))
    assert again.returncode == 0, again.stderr
    last = [e for e in work.events() if e["type"] == "run_started"][-1]
    assert last["accounts"] == ["a2"]


def test_sys_exit_in_a_step_and_a_playwright_timeout_are_step_failures(site: str, work: Workdir) -> None:
    """sys.exit() fails its step like any exception (the run still ends properly), and a Playwright call
    that times out inside a block says so with Playwright's own message and its last call-log line."""
    (work.root / "stop.py").write_text('''
import sys


async def warm(page, account, step):
    async with step("open"):
        await page.goto(account.url("/feed"))
    async with step("missing button", timeout_ms=500, optional=True):
        await page.click("#nowhere")
    async with step("give up"):
        sys.exit(3)
''')
    result = warmup(*work.run_args(work.task(task_text(site, script="stop:warm"))))
    assert result.returncode == 1
    events = work.events()
    assert [e["type"] for e in events][-1] == "run_finished"
    steps = steps_of(events, "a1")
    assert steps[1]["error"] == 'Timeout 500ms exceeded (waiting for locator("#nowhere"))'
    assert steps[2]["error"] == "SystemExit: 3"
    a1 = [e for e in events if e["type"] == "account_finished" and e["account_id"] == "a1"][-1]
    assert a1["status"] == "FAILED" and a1["error"] == "step 3 (give up): SystemExit: 3"
