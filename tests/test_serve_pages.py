"""The dashboard's pages and the table queries behind them, without a browser or a server process.

A real log written with the real appender, folded by the real projector (``warmup project``, run
as a user runs it), a real task folder; the app (``build_app``) is served through httpx's ASGI
transport. Live behaviour (app.js) is the lead's browser tests' part; here: every hook the
browser tests use, escaping, CSRF, 404s, the empty state, the queries' filters and pagination.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import warmup
from starlette.applications import Starlette

from warmup.events.envelope import make_event
from warmup.log import as_log
from warmup.serve import queries
from warmup.serve.app import build_app  # noqa: E402
from warmup.serve.catalog import TaskCatalog
from warmup.serve.config import ServeConfig
from warmup.serve.control import Problem
from warmup.serve.launcher import Launcher
from warmup.serve.state import ServeState

EVIL = "<script>alert(1)</script>"
TASK = """\
id = "{id}"
name = "{name}"
[[accounts]]
id = "a1"
[[accounts]]
id = "a2"
[[steps]]
goto = "http://127.0.0.1:9/"
"""


class Clock:
    """Log timestamps one second apart, from 2026-11-29 07:00:00."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        h, rest = divmod(self.n, 3600)
        m, s = divmod(rest, 60)
        return f"2026-11-29T{7 + h:02d}:{m:02d}:{s:02d}.000000Z"


def write_run(log: object, clock: Clock, run_id: str, task_id: str, outcomes: dict[str, str | None], *,
              finish: bool = True, artifacts: Path | None = None) -> None:
    """One run: each account COMPLETED (``None``), FAILED (an error text) or left RUNNING (``"running"``)."""
    appender = as_log(log).appender(fsync="batch")  # type: ignore[arg-type]

    def emit(type_: str, **fields: object) -> None:
        appender.append(make_event(type_, ts=clock(), run_id=run_id, **fields))

    emit("run_started", task_id=task_id, task_name=task_id, accounts=list(outcomes), steps=1, concurrency=2,
         host="h", pid=1)
    for account, error in outcomes.items():
        emit("account_started", account_id=account, attempt=1)
        if error == "running":
            continue
        emit("step_finished", account_id=account, index=0, action="goto", ok=error is None, duration_ms=500.0,
             error=error, attempt=1)
        if error is not None and artifacts is not None:
            for kind, name in (("failure", "failure-1.png"), ("thumbnail", "failure-1-thumb.png"),
                               ("trace", "trace-1.zip")):
                path = f"{run_id}/{account}/{name}"
                (artifacts / path).parent.mkdir(parents=True, exist_ok=True)
                (artifacts / path).write_bytes(b"\x89PNG\r\n\x1a\n" if name.endswith("png") else b"PK")
                emit("artifact_saved", account_id=account, path=path, sha256="0" * 64, bytes=8, kind=kind, attempt=1)
        emit("account_finished", account_id=account, status="COMPLETED" if error is None else "FAILED", error=error,
             attempt=1)
    if finish:
        emit("run_finished", status="FAILED" if any(outcomes.values()) else "COMPLETED", reason=None)
    appender.close()


def project(root: Path) -> None:
    done = warmup("project", "--log", str(root / "events.jsonl"), "--db", str(root / "warmup.db"), "-q")
    assert done.returncode == 0, done.stderr


def make_state(root: Path) -> ServeState:
    tasks = root / "tasks"
    tasks.mkdir(exist_ok=True)
    config = ServeConfig(tasks_dir=tasks, log=root / "events.jsonl", db_path=root / "warmup.db",
                         artifacts=root / "artifacts")
    log = as_log(config.log)
    launcher = Launcher(config, log, lambda line: None)
    return ServeState(config=config, log=log, catalog=TaskCatalog(tasks), launcher=launcher)


class Client:
    """A browser's share of it: requests to the app (no lifespan: no hub, no scheduler) with its cookies kept."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.cookies = httpx.Cookies()

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", cookies=self.cookies) as c:
                answer = await c.request(method, path, **kwargs)  # type: ignore[arg-type]
                self.cookies.update(c.cookies)
                return answer

        return asyncio.run(go())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self.request("POST", path, data=data)


@contextmanager
def client(state: ServeState) -> Iterator[Client]:
    yield Client(build_app(state))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeState, Client]]:
    """Two tasks (one named with markup), a broken task file, and runs: finished, failed (with a
    screenshot and a trace), one still running, and 60 more of ``bulk`` for the pages."""
    root = tmp_path_factory.mktemp("serve-pages")
    state = make_state(root)
    (root / "artifacts").mkdir()
    (root / "tasks" / "alpha.toml").write_text(TASK.format(id="alpha", name=EVIL))
    (root / "tasks" / "bulk.toml").write_text(TASK.format(id="bulk", name="Bulk"))
    (root / "tasks" / "broken.toml").write_text(TASK.format(id=EVIL, name="Broken"))  # an id not allowed
    clock = Clock()
    log = root / "events.jsonl"
    for i in range(60):
        write_run(log, clock, f"bulk-{i:03d}", "bulk", {"a1": None, "a2": None})
    write_run(log, clock, "alpha-1", "alpha", {"a1": None, "a2": None})
    write_run(log, clock, "alpha-2", "alpha", {"a1": None, "a2": f"boom {EVIL}"}, artifacts=root / "artifacts")
    write_run(log, clock, "alpha-3", "alpha", {"a1": None, "a2": "running"}, finish=False)
    project(root)
    with client(state) as c:
        yield state, c


def rows(html: str, attr: str) -> list[str]:
    return re.findall(rf'<tr {attr}="([^"]*)"', html)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no csrf field on the page"
    return found.group(1)


def no_inline_script(html: str) -> None:
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", html), "an on*= attribute"


# -- pages ---------------------------------------------------------------------------------------
def test_tasks_page_lists_each_task_file_with_its_last_run_and_buttons(site: tuple[ServeState, Client]) -> None:
    state, c = site
    page = c.get("/")
    assert page.status_code == 200
    html = page.text
    no_inline_script(html)
    assert rows(html, "data-task") == ["alpha", "broken", "bulk"]
    alpha = html[html.index('data-task="alpha"'):html.index('data-task="broken"')]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in alpha and EVIL not in html
    assert '<td class="next-run">—</td>' in alpha
    assert 'href="/runs/alpha-3"' in alpha and "RUNNING" in alpha
    assert '<form class="start" method="post" action="/tasks/alpha/start">' in alpha
    assert f'name="csrf" value="{csrf_of(html)}"' in alpha
    assert "retry-failed" not in alpha  # alpha-3, its last run, has no failed account (yet)
    broken = html[html.index('data-task="broken"'):html.index('data-task="bulk"')]
    assert "task-error" in broken and "&lt;script&gt;" in broken and "form" not in broken
    assert re.search(r'<body data-page="tasks" data-position="\d+"', html)


def test_retry_failed_offered_when_the_last_run_has_failed_accounts(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    (tmp_path / "tasks" / "alpha.toml").write_text(TASK.format(id="alpha", name="Alpha"))
    write_run(tmp_path / "events.jsonl", Clock(), "alpha-1", "alpha", {"a1": "no", "a2": "no"})
    project(tmp_path)
    with client(state) as c:
        html = c.get("/").text
    assert '<form class="retry-failed" method="post" action="/tasks/alpha/start">' in html
    assert 'name="retry_failed" value="1"' in html and "Retry 2 failed" in html


def test_a_post_without_a_valid_csrf_token_is_403(site: tuple[ServeState, Client]) -> None:
    _, c = site
    c.get("/")  # the csrf cookie
    assert c.post("/tasks/alpha/start", data={}).status_code == 403
    assert c.post("/tasks/alpha/start", data={"csrf": "0" * 64}).status_code == 403
    assert c.post("/runs/alpha-3/cancel", data={"csrf": "nope"}).status_code == 403
    assert c.post("/runs/alpha-3/cancel", data={"csrf": "nope"}).text.count("CSRF") == 1


def test_start_that_cannot_start_shows_the_tasks_page_with_its_error(site: tuple[ServeState, Client]) -> None:
    _, c = site
    token = csrf_of(c.get("/").text)
    answer = c.post("/tasks/broken/start", data={"csrf": token})
    assert answer.status_code == 409
    assert '<p class="error" role="alert">' in answer.text and "&lt;script&gt;" in answer.text
    assert rows(answer.text, "data-task") == ["alpha", "broken", "bulk"]
    missing = c.post("/tasks/nope/start", data={"csrf": token})
    assert missing.status_code == 404 and 'class="error"' in missing.text


def test_cancel_of_a_run_without_a_process_here_says_so_on_its_page(site: tuple[ServeState, Client]) -> None:
    _, c = site
    token = csrf_of(c.get("/runs/alpha-3").text)
    answer = c.post("/runs/alpha-3/cancel", data={"csrf": token})
    assert answer.status_code == 409 and 'class="error"' in answer.text and 'id="run-status"' in answer.text


def test_runs_page_rows_counts_filters_and_pages(site: tuple[ServeState, Client]) -> None:
    _, c = site
    html = c.get("/runs").text
    no_inline_script(html)
    ids = rows(html, "data-run")
    assert ids[:3] == ["alpha-3", "alpha-2", "alpha-1"] and len(ids) == 50
    row = html[html.index('<tr data-run="alpha-2"'):html.index('<tr data-run="alpha-1"')]
    for name, value in (("total", 2), ("completed", 1), ("failed", 1), ("cancelled", 0), ("interrupted", 0)):
        assert f'data-count="{name}">{value}<' in row
    assert 'class="status st st-FAILED">FAILED<' in row
    assert 'data-live="1"' in html
    older = re.search(r'<a class="older" href="([^"]+)"', html)
    assert older
    second = c.get(older.group(1).replace("&amp;", "&")).text
    assert 'data-live="0"' in second
    assert rows(second, "data-run") == [f"bulk-{i:03d}" for i in range(12, -1, -1)]
    assert 'class="older"' not in second
    running = c.get("/runs?status=running").text
    assert rows(running, "data-run") == ["alpha-3"] and 'data-filter-status="RUNNING"' in running
    assert rows(c.get("/runs?task=alpha").text, "data-run") == ["alpha-3", "alpha-2", "alpha-1"]
    assert c.get("/runs?status=bogus").status_code == 400
    assert c.get("/runs?task=" + EVIL).status_code == 400
    assert c.get("/runs?before=garbage").status_code == 400


def test_run_page_shows_accounts_errors_artifacts_and_cancel(site: tuple[ServeState, Client]) -> None:
    _, c = site
    html = c.get("/runs/alpha-2").text
    no_inline_script(html)
    assert '<span id="run-status" class="st st-FAILED">FAILED</span>' in html
    assert '<span data-count="failed">1</span>' in html and '<span data-count="total">2</span>' in html
    assert rows(html, "data-account") == ["a1", "a2"]
    a2 = html[html.index('<tr data-account="a2"'):]
    assert "boom &lt;script&gt;alert(1)&lt;/script&gt;" in a2 and EVIL not in html
    assert '<a class="screenshot" href="/artifacts/alpha-2/a2/failure-1.png"' in a2
    assert 'src="/artifacts/alpha-2/a2/failure-1-thumb.png"' in a2 and "data:" not in a2
    assert '<a class="trace" href="/artifacts/alpha-2/a2/trace-1.zip"' in a2
    assert 'class="n steps-ok">0<' in a2 and 'class="n steps-failed">1<' in a2
    assert "form class=\"cancel\"" not in html
    assert 'data-src="/runs/alpha-2/timeline"' in html
    live = c.get("/runs/alpha-3").text
    assert '<form class="cancel" method="post" action="/runs/alpha-3/cancel">' in live
    assert re.search(r'data-page="run" data-position="\d+" data-run="alpha-3" data-run-status="RUNNING"', live)
    assert c.get("/artifacts/alpha-2/a2/failure-1.png").status_code == 200


def test_timeline_fragment_is_the_reports_timeline_with_a_position(site: tuple[ServeState, Client]) -> None:
    _, c = site
    fragment = c.get("/runs/alpha-2/timeline")
    assert fragment.status_code == 200
    assert re.match(r'<div class="timeline-fragment" data-position="\d+" data-final="1">', fragment.text)
    assert "<h2>Timeline</h2>" in fragment.text
    assert "data-account='a1'" in fragment.text and "data-account='a2' data-status='FAILED'" in fragment.text
    assert "&lt;script&gt;" in fragment.text and EVIL not in fragment.text
    again = c.get("/runs/alpha-2/timeline").text  # (from the cache of finished runs)
    assert again == fragment.text
    assert 'data-final="0"' in c.get("/runs/alpha-3/timeline").text


def test_unknown_runs_are_404_pages(site: tuple[ServeState, Client]) -> None:
    _, c = site
    for path in ("/runs/no-such-run", "/runs/..%2f..%2fetc", "/runs/no-such-run/timeline"):
        answer = c.get(path)
        assert answer.status_code == 404, path
    assert "No run" in c.get("/runs/no-such-run").text


def test_accounts_page(site: tuple[ServeState, Client]) -> None:
    _, c = site
    html = c.get("/accounts").text
    no_inline_script(html)
    assert rows(html, "data-account") == ["a1", "a2"]
    a2 = html[html.index('<tr data-account="a2"'):]
    # a2: 61 completed, 1 failed, one still running
    assert '<td class="n success-rate">98%</td>' in a2
    assert re.search(r'<td class="warmed-at">2026-11-29 \d\d:\d\d:\d\d\.000 UTC</td>', a2)
    recent = re.findall(r'<a class="st st-(\w+)" href="/runs/([^"]+)"', a2)
    assert recent == [("RUNNING", "alpha-3"), ("FAILED", "alpha-2"), ("COMPLETED", "alpha-1"),
                      ("COMPLETED", "bulk-059"), ("COMPLETED", "bulk-058")]


def test_every_page_renders_before_there_is_a_database(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    (tmp_path / "tasks" / "alpha.toml").write_text(TASK.format(id="alpha", name="Alpha"))
    with client(state) as c:
        for path, hook in (("/", 'data-task="alpha"'), ("/runs", 'class="empty"'), ("/accounts", 'class="empty"')):
            answer = c.get(path)
            assert answer.status_code == 200, path
            assert hook in answer.text
            assert "data-position" not in answer.text
        assert c.get("/runs/20261129T070000-abcdef").status_code == 404


def test_a_run_started_here_but_not_in_the_tables_yet_shows_a_starting_page(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    state.launcher.in_flight["20261129T070000-abcdef"] = "alpha"
    with client(state) as c:
        answer = c.get("/runs/20261129T070000-abcdef")
    assert answer.status_code == 200
    assert 'data-page="starting"' in answer.text and 'data-run="20261129T070000-abcdef"' in answer.text


def test_static_files_are_served(site: tuple[ServeState, Client]) -> None:
    _, c = site
    assert "EventSource" in c.get("/static/app.js").text
    assert c.get("/static/style.css").status_code == 200


# -- queries -------------------------------------------------------------------------------------
def test_list_runs_pages_through_every_run_once_newest_first(site: tuple[ServeState, Client]) -> None:
    state, _ = site
    seen: list[str] = []
    before = None
    while True:
        page = queries.list_runs(state.db_path, limit=7, before=before)
        seen += [r["id"] for r in page["runs"]]
        assert isinstance(page["position"], int)
        before = page["next"]
        if before is None:
            break
    expected = ["alpha-3", "alpha-2", "alpha-1"] + [f"bulk-{i:03d}" for i in range(59, -1, -1)]
    assert seen == expected


def test_list_runs_filters(site: tuple[ServeState, Client]) -> None:
    state, _ = site
    db = state.db_path
    assert [r["id"] for r in queries.list_runs(db, status="FAILED")["runs"]] == ["alpha-2"]
    assert [r["id"] for r in queries.list_runs(db, task="alpha", status="COMPLETED")["runs"]] == ["alpha-1"]
    alpha_1 = queries.get_run(db, "alpha-1")
    assert alpha_1 is not None
    since = queries.list_runs(db, since=alpha_1["run"]["started_at"])["runs"]
    assert [r["id"] for r in since] == ["alpha-3", "alpha-2", "alpha-1"]
    assert queries.list_runs(db, task="nope") == {"runs": [], "next": None, "position": alpha_1["position"]}
    with pytest.raises(Problem):
        queries.list_runs(db, before="not-a-cursor")


def test_get_run_last_runs_running_runs(site: tuple[ServeState, Client]) -> None:
    state, _ = site
    db = state.db_path
    detail = queries.get_run(db, "alpha-2")
    assert detail is not None
    assert [a["account_id"] for a in detail["accounts"]] == ["a1", "a2"]
    assert sorted(a["kind"] for a in detail["artifacts"]) == ["failure", "thumbnail", "trace"]
    assert queries.get_run(db, "nope") is None
    last = queries.last_runs(db, ["alpha", "bulk", "nope"])
    assert (last["alpha"]["id"], last["bulk"]["id"]) == ("alpha-3", "bulk-059") and "nope" not in last
    assert queries.running_runs(db) == {"alpha-3": "alpha"}


def test_queries_of_a_missing_database_or_missing_tables_are_empty(tmp_path: Path) -> None:
    for db in (tmp_path / "none.db", tmp_path / "empty.db"):
        if db.name == "empty.db":
            import sqlite3
            sqlite3.connect(db).close()
        assert queries.list_runs(db) == {"runs": [], "next": None, "position": None}
        assert queries.get_run(db, "x") is None
        assert queries.list_accounts(db) == []
        assert queries.last_runs(db, ["a"]) == {}
        assert queries.running_runs(db) == {}
        assert queries.checkpoint_position(db) is None
    assert not (tmp_path / "none.db").exists()  # (read-only: nothing created)


def test_list_accounts_success_rate_and_recent_runs(site: tuple[ServeState, Client]) -> None:
    state, _ = site
    accounts = {a["id"]: a for a in queries.list_accounts(state.db_path, recent=2)}
    assert accounts["a1"]["success_rate"] == 1.0 and accounts["a1"]["warm_count"] == 63
    assert accounts["a2"]["success_rate"] == pytest.approx(61 / 62)
    assert [r["run_id"] for r in accounts["a2"]["recent"]] == ["alpha-3", "alpha-2"]
    assert queries.success_rate(0, 0) is None
    assert [a["id"] for a in queries.list_accounts(state.db_path, limit=1)] == ["a1"]
    assert [a["id"] for a in queries.list_accounts(state.db_path, after="a1")] == ["a2"]
    page = queries.accounts_page(state.db_path, limit=1)
    assert ([a["id"] for a in page["accounts"]], page["more"]) == (["a1"], "a1")
    assert queries.accounts_page(state.db_path, limit=1, after="a1")["more"] is None


def test_a_live_runs_timeline_reads_only_new_lines_and_equals_a_full_read(tmp_path: Path) -> None:
    from warmup.serve.timeline import TIMELINES

    state = make_state(tmp_path)
    log, clock = tmp_path / "events.jsonl", Clock()
    write_run(log, clock, "r-1", "t", {"a1": None, "a2": "running"}, finish=False)
    project(tmp_path)
    with client(state) as c:
        first = c.get("/runs/r-1/timeline").text
        assert 'data-final="0"' in first and "data-account='a2' data-status='RUNNING'" in first
        appender = as_log(log).appender(fsync="batch")
        for type_, fields in (
            ("step_finished", {"index": 0, "action": "goto", "ok": False, "duration_ms": 700.0, "error": "late",
                               "attempt": 1}),
            ("account_finished", {"status": "FAILED", "error": "late", "attempt": 1}),
        ):
            appender.append(make_event(type_, ts=clock(), run_id="r-1", account_id="a2", **fields))
        appender.append(make_event("run_finished", ts=clock(), run_id="r-1", status="FAILED", reason=None))
        appender.close()
        project(tmp_path)
        resumed = c.get("/runs/r-1/timeline").text
        assert 'data-final="1"' in resumed and "data-account='a2' data-status='FAILED'" in resumed
        assert "late" in resumed and resumed != first
        TIMELINES.__init__()  # forget: the next one reads the whole log
        assert c.get("/runs/r-1/timeline").text == resumed
