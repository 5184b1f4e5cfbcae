"""``warmup serve`` end to end: the real command on a free loopback port, real runs in real Chromium.

Pages are tested in test_serve_pages.py (in-process), the stream in test_serve_stream.py and the
schedules' arithmetic in test_schedules.py; here the whole service: starting runs over the API,
resuming an event stream, signals, a killed server, the token and CSRF, traversal, the loop's health.
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from conftest import Workdir, cli_env, warmup
from nats_servers import NatsServer, nats_server, stream_name  # noqa: F401
from serve_support import ServeProcess, log_events, pid_alive, run_finished, wait_for

from warmup.events.envelope import new_run_id
from warmup.log import as_log

pytestmark = pytest.mark.browser

TOKEN = "t0ken-for-tests-0123456789abcdef"


def quick_task(site: str, task_id: str = "quick", name: str = "Quick") -> str:
    """ann completes; bob's page is broken: he fails at wait_for, with a screenshot."""
    return f"""
id = "{task_id}"
name = "{name}"
concurrency = 2
timeout_ms = 1500
[[accounts]]
id = "ann"
vars = {{ page = "feed" }}
[[accounts]]
id = "bob"
vars = {{ page = "broken" }}
[[steps]]
goto = "{site}/${{account.page}}"
[[steps]]
wait_for = "#feed"
"""


def slow_task(site: str, ms: int, task_id: str = "slow") -> str:
    return f"""
id = "{task_id}"
timeout_ms = {ms + 20000}
account_timeout_s = {ms / 1000 + 60}
[[accounts]]
id = "sam"
[[steps]]
goto = "{site}/slow?ms={ms}"
[[steps]]
wait_for = "#done"
"""


def raw_get(url: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def tasks_dir(work: Workdir, **files: str) -> Path:
    folder = work.root / "tasks"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.toml").write_text(text)
    return folder


def start_run(client: httpx.Client, task_id: str, **body: object) -> str:
    answer = client.post(f"/api/tasks/{task_id}/runs", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["run_id"]


def api_run(client: httpx.Client, run_id: str) -> dict | None:
    answer = client.get(f"/api/runs/{run_id}")
    return answer.json() if answer.status_code == 200 else None


def finished_in_tables(client: httpx.Client, run_id: str) -> dict | None:
    detail = api_run(client, run_id)
    return detail if detail is not None and detail["run"]["status"] != "RUNNING" else None


# -- options ------------------------------------------------------------------------------------
def test_serve_refuses_what_cannot_work_in_one_line(work: Workdir) -> None:
    folder = tasks_dir(work)
    cases = [
        (["--host", "0.0.0.0"], "--token"),
        (["--host", "0.0.0.0", "--token", "short"], "at least 16"),
        (["--tasks", str(work.root / "nope")], "no such folder"),
        (["--db", str(folder.parent / "notes.txt")], "not a database warmup can use"),
    ]
    (folder.parent / "notes.txt").write_text("not a database, but long enough to look like one\n" * 20)
    for extra, said in cases:
        args = ["serve", "--tasks", str(folder), "--port", "0", "--db", str(work.db), "--log", str(work.log), *extra]
        done = warmup(*args, timeout=30)
        assert done.returncode == 2, (extra, done.stderr)
        assert said in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not work.db.exists()  # nothing started


def test_a_port_in_use_is_one_line(work: Workdir) -> None:
    with ServeProcess(work, tasks_dir(work)) as serve:
        port = serve.url.rsplit(":", 1)[1]
        done = warmup("serve", "--tasks", str(work.root), "--port", port, "--db", str(work.root / "b.db"), timeout=30)
    assert done.returncode == 2 and "already in use" in done.stderr and "Traceback" not in done.stderr


# -- the API, the stream, the loop ----------------------------------------------------------------
def test_api_run_and_a_resumed_event_stream_miss_nothing_and_repeat_nothing(work: Workdir, site: str) -> None:
    """Started over the API, streamed, cut mid-run and resumed with Last-Event-ID: each event of the
    run exactly once; NDJSON too; the tables agree at the end."""
    folder = tasks_dir(work, quick=quick_task(site), slow=slow_task(site, 2500))
    with ServeProcess(work, folder) as serve, serve.client() as client:
        tasks = client.get("/api/tasks").json()["tasks"]
        assert {t["id"] for t in tasks} == {"quick", "slow"}
        run_id = start_run(client, "slow")
        first: list[tuple[str, dict]] = []
        with client.stream("GET", f"/api/events?run={run_id}&follow=1") as stream:
            for line in stream.iter_lines():
                if line.startswith("id: "):
                    position = line[4:]
                elif line.startswith("data: "):
                    first.append((position, orjson.loads(line[6:])))
                    if first[-1][1]["type"] == "step_finished":
                        break  # the client goes away mid-run
        assert first and first[0][1]["type"] == "run_started"
        second: list[tuple[str, dict]] = []
        headers = {"Last-Event-ID": first[-1][0]}
        with client.stream("GET", f"/api/events?run={run_id}&follow=1", headers=headers) as stream:
            for line in stream.iter_lines():
                if line.startswith("id: "):
                    position = line[4:]
                elif line.startswith("data: "):
                    second.append((position, orjson.loads(line[6:])))
                    if second[-1][1]["type"] == "run_finished":
                        break
        # meanwhile the pages and the lists, with the stream going
        for path in ("/", "/runs", f"/runs/{run_id}", "/accounts", "/api/runs", "/api/accounts"):
            assert client.get(path).status_code == 200, path
        quick = start_run(client, "quick")
        with client.stream("GET", f"/api/events?run={quick}&follow=1",
                           headers={"Accept": "application/x-ndjson"}) as stream:
            ndjson = []
            for line in stream.iter_lines():
                ndjson.append(orjson.loads(line))
                if ndjson[-1]["event"]["type"] == "run_finished":
                    break
        detail = wait_for(lambda: finished_in_tables(client, quick), what="the quick run in the tables")
        stopped = serve.stop()
    ids = [e["id"] for _, e in first + second]
    logged = [e["id"] for e in log_events(work.log, run_id)]
    assert sorted(ids) == sorted(logged) and len(set(ids)) == len(ids)
    assert [e["id"] for e in log_events(work.log, quick)] == [item["event"]["id"] for item in ndjson]
    started = next(e for e in log_events(work.log, run_id) if e["type"] == "run_started")
    assert started["trigger"] == "api"
    assert detail["run"]["status"] == "FAILED" and detail["run"]["trigger"] == "api"
    assert {a["account_id"]: a["status"] for a in detail["accounts"]} == {"ann": "COMPLETED", "bob": "FAILED"}
    assert stopped == 0
    assert "Traceback" not in serve.stderr(), serve.stderr()


def write_history(work: Workdir, runs: int, accounts: int, steps: int) -> list[str]:
    """``runs`` finished runs appended with the real appender; their ids."""
    writer = as_log(work.log).appender(fsync="batch")
    ids = []
    for r in range(runs):
        run_id = new_run_id()
        ids.append(run_id)
        names = [f"acct{a:03d}" for a in range(accounts)]
        writer.emit("run_started", run_id=run_id, task_id=f"task{r % 3}", task_name=f"<b>Task {r % 3}</b>",
                    accounts=names, steps=steps, concurrency=4, host="bench", pid=1)
        for name in names:
            writer.emit("account_started", run_id=run_id, account_id=name, attempt=1)
            for i in range(steps):
                writer.emit("step_finished", run_id=run_id, account_id=name, index=i, action="goto", ok=True,
                            duration_ms=5.0, error=None)
            writer.emit("account_finished", run_id=run_id, account_id=name, status="COMPLETED", error=None,
                        attempt=1, task_id=f"task{r % 3}")
        writer.emit("run_finished", run_id=run_id, status="COMPLETED", task_id=f"task{r % 3}")
    writer.close()
    return ids


def test_the_loop_is_never_blocked_while_pages_and_streams_are_served(work: Workdir) -> None:
    """asyncio debug mode, 50 ms slow-callback threshold: two clients stream the whole log's history
    and a live burst while every page and list is fetched, a 200-account run page among them. Any
    callback that held the server's loop longer is logged by asyncio, and fails the test."""
    ids = write_history(work, runs=40, accounts=10, steps=4) + write_history(work, runs=1, accounts=200, steps=3)
    big = ids[-1]
    env = cli_env(WARMUP_SLOW_CALLBACK_MS="50")
    with ServeProcess(work, tasks_dir(work), env=env) as serve, serve.client() as client:
        wait_for(lambda: api_run(client, big), what="the tables")
        counts: dict[str, int] = {}

        def stream(query: str) -> None:
            with serve.client() as own, own.stream("GET", f"/api/events?{query}") as answer:
                counts[query] = sum(1 for line in answer.iter_lines() if line.startswith("data: "))

        queries = (f"run={big}&follow=0", "after=0&follow=0")
        streams = [threading.Thread(target=stream, args=(q,)) for q in queries]
        for thread in streams:
            thread.start()
        for _ in range(3):
            for path in ("/", "/runs", f"/runs/{big}", f"/runs/{big}/timeline", f"/runs/{ids[0]}", "/accounts",
                         "/api/runs?limit=1000", "/api/accounts", f"/api/runs/{big}", "/api/tasks"):
                assert client.get(path).status_code == 200, path
        live = write_history(work, runs=1, accounts=50, steps=4)[0]
        for thread in streams:
            thread.join(timeout=60)
        wait_for(lambda: finished_in_tables(client, live), what="the live run in the tables")
        serve.stop()
    assert counts[queries[0]] == 200 * 5 + 2 and counts[queries[1]] >= 40 * 10 * 6 + 80 + counts[queries[0]]
    said = serve.stderr()
    assert "Executing" not in said, said  # asyncio's slow-callback warning
    assert "Traceback" not in said, said


def test_api_refuses_bad_requests_with_one_line(work: Workdir, site: str) -> None:
    folder = tasks_dir(work, quick=quick_task(site), broken='id = "broken"\nsteps = 3\n')
    with ServeProcess(work, folder) as serve, serve.client() as client:
        cases = [
            (client.post("/api/tasks/nope/runs", json={}), 404),
            (client.post("/api/tasks/broken/runs", json={}), 409),
            (client.post("/api/tasks/quick/runs", json={"accounts": ["zed"]}), 400),
            (client.post("/api/tasks/quick/runs", json={"colour": "red"}), 400),
            (client.post("/api/tasks/quick/runs", content=b"{", headers={"Content-Type": "application/json"}), 400),
            (client.post("/api/tasks/quick/runs", data={"accounts": "ann"}), 415),
            (client.get("/api/runs?status=SLEEPY"), 400),
            (client.get("/api/runs?limit=0"), 400),
            (client.get("/api/runs?since=yesterday-ish"), 400),
            (client.get("/api/runs/20261129T070000-abcdef"), 404),
            (client.post("/api/runs/20261129T070000-abcdef/cancel", json={}), 409),
            (client.post("/api/runs/20261129T070000-abcdef/cancel"), 415),  # a form could send that
            (client.post("/api/tasks/quick/runs", content=b"x" * (2 << 20),
                         headers={"Content-Type": "application/json"}), 413),
        ]
        for answer, status in cases:
            assert answer.status_code == status, (answer.request.url, answer.text)
            assert answer.json()["error"] and "\n" not in answer.json()["error"]
        tasks = {t["id"]: t for t in client.get("/api/tasks").json()["tasks"]}
        assert tasks["broken"]["error"] and "no accounts" in tasks["broken"]["error"]
    assert not work.log.exists() or not log_events(work.log)  # nothing was started


def test_serve_on_a_nats_stream(work: Workdir, site: str, nats_server: NatsServer) -> None:  # noqa: F811
    """The same service with the log on JetStream: a run started over the API, streamed live from the
    stream, projected from it."""
    folder = tasks_dir(work, quick=quick_task(site))
    with ServeProcess(work, folder, log=f"{nats_server.url}/{stream_name('serve')}") as serve, \
            serve.client() as client:
        run_id = start_run(client, "quick")
        seen = []
        with client.stream("GET", f"/api/events?run={run_id}&follow=1",
                           headers={"Accept": "application/x-ndjson"}) as stream:
            for line in stream.iter_lines():
                if line:
                    seen.append(orjson.loads(line)["event"])
                    if seen[-1]["type"] == "run_finished":
                        break
        detail = wait_for(lambda: finished_in_tables(client, run_id), what="the run in the tables")
    assert seen[0]["type"] == "run_started" and seen[0]["trigger"] == "api"
    assert detail["run"]["status"] == "FAILED" and len({e["id"] for e in seen}) == len(seen)
    assert sum(e["type"] == "account_finished" for e in seen) == 2


# -- signals -----------------------------------------------------------------------------------
def test_a_killed_server_loses_no_run_and_a_restarted_one_shows_it(work: Workdir, site: str) -> None:
    folder = tasks_dir(work, slow=slow_task(site, 3000))
    serve = ServeProcess(work, folder)
    with serve.client() as client:
        run_id = start_run(client, "slow")
        started = next(e for e in log_events(work.log, run_id) if e["type"] == "run_started")
    assert serve.stop(signal.SIGKILL) == -signal.SIGKILL
    assert pid_alive(started["pid"])  # the run's own process goes on
    finished = wait_for(lambda: run_finished(work.log, run_id), what="the run's run_finished")
    assert finished["status"] == "COMPLETED"
    with ServeProcess(work, folder) as again, again.client() as client:
        detail = wait_for(lambda: finished_in_tables(client, run_id), what="the run in the restarted server")
        assert detail["run"]["status"] == "COMPLETED"
        assert [r["id"] for r in client.get("/api/runs?status=RUNNING").json()["runs"]] == []


def test_a_run_whose_process_dies_no_longer_holds_its_task(work: Workdir, site: str) -> None:
    """kill -9 of a run's process (no run_finished): its task is not "running" any more, so it can be
    started again (and its schedule is not skipped forever)."""
    folder = tasks_dir(work, slow=slow_task(site, 30000))
    with ServeProcess(work, folder) as serve, serve.client() as client:
        run_id = start_run(client, "slow")
        started = next(e for e in log_events(work.log, run_id) if e["type"] == "run_started")
        assert client.get("/api/tasks").json()["tasks"][0]["running"] == run_id
        os.kill(started["pid"], signal.SIGKILL)
        wait_for(lambda: client.get("/api/tasks").json()["tasks"][0]["running"] is None, what="the task freed")
        again = start_run(client, "slow")  # its first act: warmup run closes the dead run from the log
        wait_for(lambda: run_finished(work.log, run_id), what="the dead run closed")
        assert client.post(f"/api/runs/{again}/cancel", json={}).status_code == 202
        wait_for(lambda: run_finished(work.log, again), what="the second run cancelled")
    assert run_finished(work.log, run_id)["status"] == "INTERRUPTED"


def test_sigterm_lets_runs_finish_within_grace_then_interrupts_them(work: Workdir, site: str) -> None:
    folder = tasks_dir(work, slow=slow_task(site, 30000))
    serve = ServeProcess(work, folder, "--grace", "1")
    with serve.client() as client:
        run_id = start_run(client, "slow")
    began = time.monotonic()
    assert serve.stop(signal.SIGTERM) == 0
    assert time.monotonic() - began < 25
    finished = run_finished(work.log, run_id)
    assert finished is not None and finished["status"] == "INTERRUPTED"
    said = serve.stderr()
    assert "interrupted (SIGINT)" in said and "exited with 130" in said, said
    done = warmup("runs", "--db", str(work.db), "--json")
    assert "RUNNING" not in done.stdout


# -- security -----------------------------------------------------------------------------------
SECRET = "hunter2-not-for-your-eyes"


def test_token_csrf_host_and_artifact_traversal(work: Workdir) -> None:
    folder = tasks_dir(work)
    (folder / "x.toml").write_text('id = "x"\n[[accounts]]\nid = "a"\n[[steps]]\ngoto = "http://127.0.0.1:9/"\n'
                                   '[[steps]]\nfill = "#pass"\nvalue = "${env.SERVE_TEST_PASSWORD}"\n')
    shots = work.artifacts / "r1" / "a"
    shots.mkdir(parents=True)
    (shots / "shot.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (work.root / "secret.txt").write_text("outside")
    (work.artifacts / "link.png").symlink_to(work.root / "secret.txt")
    with ServeProcess(work, folder, token=TOKEN, env=cli_env(SERVE_TEST_PASSWORD=SECRET)) as serve:
        anonymous = httpx.Client(base_url=serve.url, timeout=30)
        for path in ("/", "/runs", "/api/tasks", "/api/events", "/artifacts/r1/a/shot.png"):
            assert anonymous.get(path).status_code == 401, path
        assert anonymous.post("/api/tasks/x/runs", json={}).status_code == 401
        assert anonymous.get("/static/style.css").status_code == 200
        assert anonymous.get("/login").status_code == 200
        assert anonymous.post("/login", data={"token": "wrong"}).status_code == 401
        signed_in = anonymous.post("/login", data={"token": TOKEN})
        assert signed_in.status_code == 303 and TOKEN not in signed_in.headers["set-cookie"]
        assert anonymous.get("/").status_code == 200  # the sign-in cookie
        # a neighbour's cookie (another app on localhost) with quotes in it hides nothing of ours
        session = signed_in.headers["set-cookie"].split(";")[0]
        raw = httpx.get(serve.url + "/", headers={"Cookie": f'grafana={{"t":1}}; {session}'}, timeout=30)
        assert raw.status_code == 200
        page = anonymous.get("/")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        # a dashboard POST without (or with a wrong) CSRF token
        assert anonymous.post("/tasks/x/start", data={}).status_code == 403
        assert anonymous.post("/tasks/x/start", data={"csrf": "0" * 64}).status_code == 403
        with serve.client() as client:
            assert client.get("/api/tasks").status_code == 200
            assert client.get("/artifacts/r1/a/shot.png").content.startswith(b"\x89PNG")
        probes = ("/artifacts/../secret.txt", "/artifacts/%2e%2e/secret.txt", "/artifacts/r1/%2e%2e/%2e%2e/secret.txt",
                  "/artifacts/%2E%2E%2Fsecret.txt", "/artifacts//etc/passwd", "/artifacts/%2Fetc%2Fpasswd",
                  "/artifacts/link.png", "/artifacts/r1/a/../../../secret.txt", "/artifacts/r1/a",
                  "/artifacts/nothing.png", "/artifacts/r1/a/shot.png%00.txt")
        for path in probes:  # sent as written: http.client does not normalise ../ as httpx would
            status, body = raw_get(serve.url, path, {"Authorization": f"Bearer {TOKEN}"})
            assert status == 404 and b"outside" not in body and b"root:" not in body, path
        assert raw_get(serve.url, "/artifacts/r1/a/shot.png", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        with serve.client() as client:
            shown = [client.get(path) for path in ("/", "/api/tasks", "/api/tasks/x", "/runs", "/accounts")]
            assert all(answer.status_code == 200 for answer in shown)
            assert "${env.SERVE_TEST_PASSWORD}" in client.get("/api/tasks/x").text  # the task as written
            assert not any(SECRET in answer.text for answer in shown)
            assert client.get("/", headers={"Host": "evil.example:80"}).status_code == 400
            cross = client.post("/api/tasks/x/runs", json={}, headers={"Sec-Fetch-Site": "cross-site"})
            assert cross.status_code == 403
        assert TOKEN not in serve.stderr() and SECRET not in serve.stderr()


# -- schedules ----------------------------------------------------------------------------------
def scheduled_task(site: str, ms: int, schedule: str) -> str:
    return f'schedule = "{schedule}"\n' + slow_task(site, ms, "tick")


def scheduled_runs(log: Path) -> list[dict]:
    return [e for e in log_events(log) if e["type"] == "run_started" and e.get("trigger") == "schedule"]


def test_a_schedule_fires_never_overlaps_itself_and_catches_up_once(work: Workdir, site: str) -> None:
    """Every 2 s, runs of 2.5 s: firings while the task runs are skipped (and said); after the server
    was down past a due time, the restarted server fires once at start, for the latest missed due."""
    folder = tasks_dir(work, tick=scheduled_task(site, 2500, "* * * * * */2"))
    with ServeProcess(work, folder) as serve, serve.client() as client:
        item = client.get("/api/tasks").json()["tasks"][0]
        assert item["next_run_at"] is not None
        wait_for(lambda: len([e for e in scheduled_runs(work.log) if run_finished(work.log, e["run_id"])]) >= 2,
                 timeout=90, what="two scheduled runs finished")
        serve.stop()
    said = serve.stderr()
    assert "is still running" in said and "skipped" in said, said
    in_flight: set[str] = set()
    for event in log_events(work.log):  # never two runs of the task at once
        if event["type"] == "run_started":
            assert not in_flight, f"run {event['run_id']} started while {in_flight} ran"
            in_flight.add(event["run_id"])
        elif event["type"] == "run_finished":
            in_flight.discard(event["run_id"])
    fired = [e["scheduled_for"] for e in scheduled_runs(work.log)]
    assert len(fired) == len(set(fired))
    last_due = datetime.fromisoformat(max(fired).replace("Z", "+00:00"))
    # down for more than one period: a due time passes while no server runs
    wait_for(lambda: datetime.now(UTC) > last_due + timedelta(seconds=4.5), timeout=30, what="a missed due time")
    before = len(scheduled_runs(work.log))
    with ServeProcess(work, folder) as again:
        wait_for(lambda: len(scheduled_runs(work.log)) > before, timeout=60, what="the catch-up run")
        again.stop()
    catch_ups = [line for line in again.stderr().splitlines() if "missed its firing" in line]
    assert len(catch_ups) == 1, again.stderr()
    first = scheduled_runs(work.log)[before]
    assert datetime.fromisoformat(first["scheduled_for"].replace("Z", "+00:00")) > last_due + timedelta(seconds=3)
