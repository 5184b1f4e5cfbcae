"""``warmup report``: the HTML report of a real run, opened in real headless Chromium.

The run is made by the runner (the CLI in a subprocess) against the test site on 127.0.0.1, projected
by ``warmup project``, reported by ``warmup report``, and the file is opened through Playwright with
every request the page makes recorded. The escaping test writes a synthetic log whose texts are
markup, and checks that the report shows them as text and runs nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from conftest import Workdir, warmup
from playwright.sync_api import Browser, Page

from warmup.events import EventWriter
from warmup.events.envelope import encode, make_event

pytestmark = pytest.mark.browser


@dataclass
class Opened:
    page: Page
    url: str
    requests: list[str]


def open_report(browser: Browser, path: Path) -> Opened:
    """Load the report with every request recorded (and anything not the file or a data: URI refused).

    The report's Content-Security-Policy is bypassed: it would block an outside request or a script
    before the recorder sees it, and these tests check the markup itself, not only the safety net.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    requests: list[str] = []
    file_url = path.resolve().as_uri()

    def record(route, request) -> None:  # noqa: ANN001 (Playwright's Route/Request)
        requests.append(request.url)
        if request.url == file_url or request.url.startswith("data:"):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", record)
    page = context.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.goto(file_url, wait_until="load")
    return Opened(page, file_url, requests)


def assert_nothing_outside(opened: Opened) -> None:
    assert opened.url in opened.requests, "the request recorder saw nothing: it is not working"
    outside = [u for u in opened.requests if u != opened.url and not u.startswith("data:")]
    assert outside == [], f"the report requested {outside}"


def run_id_of(log: Path) -> str:
    return orjson.loads(log.read_bytes().splitlines()[0])["run_id"]


@pytest.fixture(scope="module")
def real_run(site: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Workdir, str]:
    """A run of 3 accounts: ok (with a screenshot step), flaky (fails once, then passes), broken (fails twice)."""
    work = Workdir(tmp_path_factory.mktemp("report"))
    task = work.task(f"""
id = "report-test"
concurrency = 3
retries = 1
[[accounts]]
id = "ok"
vars = {{ url = "{site}/feed" }}
[[accounts]]
id = "flaky"
vars = {{ url = "{site}/flaky?key=report-{time.time_ns()}" }}
[[accounts]]
id = "broken"
vars = {{ url = "{site}/broken" }}
[[steps]]
click = "#nothing-here"
optional = true
timeout_ms = 200
[[steps]]
goto = "${{account.url}}"
[[steps]]
screenshot = "shot-${{account.id}}"
""")
    result = warmup(*work.run_args(task, "--no-project"))
    assert result.returncode == 1, result.stderr
    projected = warmup("project", "--log", str(work.log), "--db", str(work.db))
    assert projected.returncode == 0, projected.stderr
    return work, run_id_of(work.log)


def test_report_of_a_real_run_in_chromium(real_run: tuple[Workdir, str], browser: Browser) -> None:
    work, run_id = real_run
    out = work.root / "report.html"
    result = warmup("report", run_id, "--log", str(work.log), "--db", str(work.db),
                    "--artifacts", str(work.artifacts), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout and "1 failure" not in result.stdout  # broken failed twice
    text = out.read_text()
    assert "http://" not in text.replace("http://127.0.0.1:", "")  # the site's URLs only, as text
    assert len(text) < 1_000_000
    assert out.stat().st_mode & 0o777 == 0o600  # like the screenshots it holds

    opened = open_report(browser, out)
    page = opened.page
    lanes = page.locator(".lane")
    assert lanes.count() == 3
    assert [lanes.nth(i).get_attribute("data-account") for i in range(3)] == ["ok", "flaky", "broken"]  # run order
    # the failed account is marked (and only it), and its lane shows both attempts, the second as a retry
    assert page.locator(".lane.bad").count() == 1
    bad = page.locator(".lane.bad")
    assert bad.get_attribute("data-account") == "broken" and bad.get_attribute("data-status") == "FAILED"
    assert page.locator(".lane.bad .who").evaluate("e => getComputedStyle(e).color") == "rgb(198, 40, 40)"
    assert bad.locator(".track b").count() == 2 and bad.locator(".track b.r").count() == 1
    assert bad.locator(".track i.failed").count() == 2  # goto /broken, once per attempt
    # the flaky one retried too, and finished: a retry marker, not a failed lane
    flaky = page.locator(".lane[data-account=flaky]")
    assert flaky.locator(".track b.r").count() == 1 and flaky.get_attribute("data-status") == "COMPLETED"
    # bars are laid out inside the track: positioned, with a width, coloured by outcome
    ok_bars = page.locator(".lane[data-account=ok] .track i")
    assert ok_bars.count() == 3
    assert page.locator(".lane[data-account=ok] .track i.optional").count() == 1
    box = ok_bars.nth(1).bounding_box()
    track = page.locator(".lane[data-account=ok] .track").bounding_box()
    assert box and track and box["width"] >= 2 and track["x"] <= box["x"] <= track["x"] + track["width"]
    # the slowest-steps table, the failures with their screenshots
    steps = [e for e in work.events() if e["type"] == "step_finished"]
    assert len(steps) == 3 + (2 + 3) + (2 + 2)  # ok; flaky: 2 steps, then 3; broken: 2 steps twice
    assert page.locator("table.slowest tr").count() == 1 + min(len(steps), 15)
    slowest = max(steps, key=lambda e: e["duration_ms"])
    first_row = page.locator("table.slowest tr").nth(1).locator("td")
    assert [first_row.nth(i).inner_text() for i in (0, 1, 2)] == [
        slowest["account_id"], str(slowest["index"] + 1), slowest["action"],
    ]
    failures = page.locator(".failure")
    assert failures.count() == 3  # flaky attempt 1, broken attempts 1 and 2
    final = page.locator(".failure[data-account=broken]:not(.retried)")
    assert "HTTP 500" in final.locator("pre.error").inner_text()
    assert final.locator("code.url").inner_text().endswith("/broken")
    saved = [e for e in work.events() if e["type"] == "artifact_saved"]
    shots = {e["path"]: e["sha256"] for e in saved}
    inlined = {e["path"]: e["sha256"] for e in saved if e["kind"] not in ("failure", "trace")}  # (failures: thumbnails)
    run_dir = f"{run_id}/broken"
    if final.locator("img").count() == 0:
        # its screenshot is the same bytes as attempt 1's: inlined once, this one links to it
        assert shots[f"{run_dir}/failure-1.png"] == shots[f"{run_dir}/failure-2.png"]
        target = final.locator(".same a").get_attribute("href") or "?"
        img = page.locator(f"img{target}")
        assert page.locator(".failure[data-account=broken].retried").locator(f"img{target}").count() == 1
    else:
        img = final.locator("img")
    img.scroll_into_view_if_needed()
    assert img.get_attribute("src").startswith("data:image/png;base64,")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle(), timeout=5000)
    assert text.count("data:image/png;base64,") == len(set(inlined.values()))  # each distinct image once
    assert "Half size; the full screenshot is" in img.locator("xpath=following-sibling::p[1]").inner_text()
    # the failed lane's name links to its failure
    assert bad.locator(".who a").get_attribute("href") == "#" + (final.get_attribute("id") or "?")
    # the screenshot step's image of the ok account is there too
    shot = page.locator("figure.shot img[alt*='shot-ok']")
    shot.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=shot.element_handle(), timeout=5000)
    assert_nothing_outside(opened)
    page.context.close()


def test_unknown_run_and_missing_log_are_one_line_exit_2(real_run: tuple[Workdir, str], tmp_path: Path) -> None:
    work, run_id = real_run
    out = tmp_path / "r.html"
    result = warmup("report", "no-such-run", "--log", str(work.log), "--db", str(work.db), "-o", str(out))
    assert result.returncode == 2
    assert result.stderr.startswith(f"warmup: no run 'no-such-run' in {work.log}: see `warmup runs`")
    missing = warmup("report", run_id, "--log", str(tmp_path / "nope.jsonl"), "--db", str(work.db), "-o", str(out))
    assert missing.returncode == 2 and "no event log at" in missing.stderr and "Traceback" not in missing.stderr
    nodir = warmup("report", run_id, "--log", str(work.log), "--db", str(work.db), "-o", str(tmp_path / "x" / "r.html"))
    assert nodir.returncode == 2 and "no folder" in nodir.stderr and "Traceback" not in nodir.stderr
    assert not out.exists()


HOSTILE = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"


def test_log_texts_are_escaped_and_nothing_runs(tmp_path: Path, browser: Browser) -> None:
    log, db, artifacts = tmp_path / "events.jsonl", tmp_path / "warmup.db", tmp_path / "artifacts"
    run_id = "escape-run"
    account = "acct'\"><b id=injected>x</b>"
    ts = iter(f"2026-11-29T07:00:{s:02d}.000000Z" for s in range(60))
    with EventWriter(log, fsync="batch") as writer:
        def emit(type_: str, **fields: object) -> None:
            writer.append(make_event(type_, ts=next(ts), run_id=run_id, **fields))

        emit("run_started", task_id="t<i>", task_name=HOSTILE, accounts=[account], steps=2, concurrency=1,
             host="h<script>", pid=1)
        emit("account_started", account_id=account, attempt=1)
        emit("step_finished", account_id=account, index=0, action="goto", ok=True, duration_ms=800.0, error=None)
        emit("step_finished", account_id=account, index=1, action="click", ok=False, duration_ms=1500.0,
             error=HOSTILE, url="http://127.0.0.1:9/'><script>window.__pwned=3</script>")
        emit("artifact_saved", account_id=account, path=f"{run_id}/a/failure-1.png", sha256="0" * 64, bytes=10,
             kind="failure", attempt=1)
        emit("account_finished", account_id=account, status="FAILED", error=f"step 2 (click): {HOSTILE}", attempt=1)
        emit("run_finished", status="FAILED")
    assert warmup("project", "--log", str(log), "--db", str(db)).returncode == 0
    out = tmp_path / "report.html"
    result = warmup("report", run_id, "--log", str(log), "--db", str(db), "--artifacts", str(artifacts),
                    "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "1 screenshot(s) missing" in result.stdout
    text = out.read_text()
    assert "<script" not in text and "<img src=x" not in text and "<b id=injected" not in text
    assert "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:;" in text

    opened = open_report(browser, out)
    page = opened.page
    assert page.evaluate("window.__pwned") is None
    assert page.locator("script").count() == 0
    assert page.locator("img[onerror]").count() == 0 and page.locator("#injected").count() == 0
    # the texts are there, as text
    assert HOSTILE in page.locator(".failure pre.error").inner_text()
    assert "<script>window.__pwned=3</script>" in page.locator(".failure code.url").inner_text()
    assert page.locator(".lane").get_attribute("data-account") == account
    assert HOSTILE in (page.locator(".lane .track i.failed").get_attribute("title") or "")
    assert "missing" in page.locator(".failure .note").inner_text()
    assert_nothing_outside(opened)
    page.context.close()


def test_a_run_still_going_with_a_bad_line(tmp_path: Path) -> None:
    """A run without its end (still running, or its runner killed): open attempts end where the timeline does."""
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    run_id = "running-run"
    with EventWriter(log, fsync="batch") as writer:
        def emit(type_: str, second: int, **fields: object) -> None:
            writer.append(make_event(type_, ts=f"2026-11-29T07:00:{second:02d}.000000Z", run_id=run_id, **fields))

        emit("run_started", 0, task_id="t", task_name="t", accounts=["a", "b"], steps=3, concurrency=1,
             host="h", pid=1)
        emit("account_started", 1, account_id="a", attempt=1)
        emit("step_finished", 3, account_id="a", index=0, action="goto", ok=True, duration_ms=1500.0, error=None)
    with open(log, "ab") as f:  # lines that mention the run but are not (usable) events
        f.write(b'{"run_id":"running-run","type":"step_finished"}\n')
        bad_time = make_event("step_finished", run_id=run_id, account_id="a", index=1, action="goto", ok=True,
                              duration_ms=1.0, error=None)
        bad_time["ts"] = "2026-11-29T07:00:0\u0663.000000Z"  # an Arabic-Indic digit: not a time
        f.write(encode(bad_time))
    assert warmup("project", "--log", str(log), "--db", str(db)).returncode == 0
    out = tmp_path / "report.html"
    result = warmup("report", run_id, "--log", str(log), "--db", str(db), "--artifacts", str(tmp_path), "-o", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "data-account='a' data-status='RUNNING'" in text and "data-account='b' data-status='PENDING'" in text
    assert "not finished" in text and "2 line(s) of it not readable, skipped" in text
    assert "attempt 1: running" in text  # the open attempt is drawn, up to the last event
    assert "<h2>Failures</h2><p>None.</p>" in text


def test_report_refuses_to_overwrite_the_log_or_the_database(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    with EventWriter(log, fsync="batch") as writer:
        writer.append(make_event("run_started", run_id="r", task_id="t", task_name="t", accounts=["a"], steps=1,
                                 concurrency=1, host="h", pid=1))
    assert warmup("project", "--log", str(log), "--db", str(db)).returncode == 0
    before = log.read_bytes(), db.read_bytes()
    for target in (log, db):
        result = warmup("report", "r", "--log", str(log), "--db", str(db), "-o", str(target))
        assert result.returncode == 2 and "write the report to another file" in result.stderr
    assert (log.read_bytes(), db.read_bytes()) == before


def test_a_skipped_step_and_a_scripted_step_are_drawn_as_what_they_are(tmp_path: Path) -> None:
    """A skipped step is grey and says "skipped" (never a green "ok"); a scripted step shows its name."""
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    run_id = "skips-run"
    with EventWriter(log, fsync="batch") as writer:
        def emit(type_: str, second: int, **fields: object) -> None:
            writer.append(make_event(type_, ts=f"2026-11-29T07:00:{second:02d}.000000Z", run_id=run_id, **fields))

        emit("run_started", 0, task_id="t", task_name="t", accounts=["a"], steps=2, concurrency=1, host="h", pid=1)
        emit("account_started", 1, account_id="a", attempt=1)
        emit("step_finished", 2, account_id="a", index=0, action="fill", ok=True, duration_ms=2.0, error=None,
             attempt=1, skipped=True)
        emit("step_finished", 3, account_id="a", index=1, action="script", ok=True, duration_ms=900.0, error=None,
             attempt=1, name="open feed")
        emit("account_finished", 4, account_id="a", status="COMPLETED", error=None, attempt=1)
        emit("run_finished", 5, status="COMPLETED", counts={"COMPLETED": 1})
    assert warmup("project", "--log", str(log), "--db", str(db)).returncode == 0
    out = tmp_path / "report.html"
    result = warmup("report", run_id, "--log", str(log), "--db", str(db), "--artifacts", str(tmp_path), "-o", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "<i class='skipped'" in text and "a: step 1 fill, attempt 1: 2 ms, skipped" in text
    assert "<i class='ok'" in text and "a: step 2 script &#x27;open feed&#x27;, attempt 1: 900 ms, ok" in text
    assert "<td>script &#x27;open feed&#x27;</td>" in text
