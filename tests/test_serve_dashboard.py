"""The dashboard in a real Chromium: Start, the live run page, a failure's screenshot, Cancel.

The server is the real ``warmup serve`` process; Playwright drives the page as a user would, and
the page must reach the run's final counts without a reload (the counts come over Server-Sent
Events from the log).
"""

from __future__ import annotations

import pytest
from conftest import Workdir
from playwright.sync_api import Browser, Page, expect
from serve_support import ServeProcess, log_events, run_finished, wait_for
from test_serve import quick_task, slow_task, tasks_dir

pytestmark = pytest.mark.browser


def new_page(browser: Browser) -> tuple[Page, list[str], list[str]]:
    """A page that records every navigation of its main frame and every dialog (none may open)."""
    page = browser.new_page()
    navigations: list[str] = []
    dialogs: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    return page, navigations, dialogs


def test_start_from_the_dashboard_watch_it_live_and_open_the_failure_screenshot(
    work: Workdir, site: str, browser: Browser
) -> None:
    evil = "Quick <script>alert(1)</script>"
    # each account first waits 2.5 s on a slow page: the run page is seen RUNNING, then goes live
    text = quick_task(site, name=evil).replace(
        "[[steps]]", f'[[steps]]\ngoto = "{site}/slow?ms=2500"\ntimeout_ms = 20000\n\n[[steps]]', 1)
    folder = tasks_dir(work, quick=text)
    with ServeProcess(work, folder) as serve:
        runs, runs_navigations, _ = new_page(browser)  # the runs page, open before the run exists
        runs.goto(serve.url + "/runs")
        expect(runs.locator("nav .live")).to_be_visible()  # its event stream is open
        page, navigations, dialogs = new_page(browser)
        page.goto(serve.url + "/")
        row = page.locator("tr[data-task=quick]")
        expect(row).to_contain_text(evil)  # shown as text, not run
        row.locator("form.start button").click()
        page.wait_for_url("**/runs/*")
        run_id = page.url.rsplit("/", 1)[1]
        # (a run not in the tables yet shows a "starting" page, which loads the run page once it is)
        expect(page.locator("#run-status")).to_have_text("RUNNING", timeout=30_000)
        loaded = len(navigations)
        expect(page.locator("#run-status")).to_have_text("FAILED", timeout=60_000)
        expect(page.locator("[data-count=completed]").first).to_have_text("1")
        expect(page.locator("[data-count=failed]").first).to_have_text("1")
        expect(page.locator("tr[data-account=bob] .status")).to_have_text("FAILED")
        assert len(navigations) == loaded, navigations  # no reload: it all came live
        row = runs.locator(f"tr[data-run='{run_id}']")  # the runs page got the new run, and its counts, live
        expect(row.locator(".status")).to_have_text("FAILED")
        expect(row.locator("[data-count=completed]")).to_have_text("1")
        expect(row.locator("[data-count=failed]")).to_have_text("1")
        assert len(runs_navigations) == 1, runs_navigations
        shot = page.locator("tr[data-account=bob] a.screenshot").first
        expect(shot).to_be_visible(timeout=30_000)
        href = shot.get_attribute("href")
        assert href is not None and href.startswith("/artifacts/")
        image = page.request.get(serve.url + href)
        assert image.status == 200 and image.headers["content-type"] == "image/png"
        assert image.body().startswith(b"\x89PNG")
        page.goto(serve.url + "/accounts")
        expect(page.locator("tr[data-account=bob] .recent a").first).to_have_attribute("href", f"/runs/{run_id}")
        assert dialogs == []
    started = next(e for e in log_events(work.log, run_id) if e["type"] == "run_started")
    assert started["trigger"] == "dashboard"


def test_cancel_from_the_run_page_interrupts_the_run(work: Workdir, site: str, browser: Browser) -> None:
    folder = tasks_dir(work, slow=slow_task(site, 30_000))
    with ServeProcess(work, folder) as serve:
        page, _, _ = new_page(browser)
        page.goto(serve.url + "/")
        page.locator("tr[data-task=slow] form.start button").click()
        page.wait_for_url("**/runs/*")
        run_id = page.url.rsplit("/", 1)[1]
        wait_for(lambda: any(e["type"] == "account_started" for e in log_events(work.log, run_id)),
                 what="the account to start")
        page.locator("form.cancel button").click()
        expect(page.locator("#run-status")).to_have_text("INTERRUPTED", timeout=60_000)
        finished = wait_for(lambda: run_finished(work.log, run_id), what="run_finished")
        assert finished["status"] == "INTERRUPTED"
        account = next(e for e in log_events(work.log, run_id) if e["type"] == "account_finished")
        assert account["status"] in ("INTERRUPTED", "CANCELLED")
        wait_for(lambda: f"run {run_id}: its process exited with 130" in serve.stderr(), what="exit 130")
