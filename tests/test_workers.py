"""Workers on many hosts (issue 12): ``run --workers`` queues accounts, ``warmup worker`` processes drive them.

Real nats-server processes (one server, and a 3-node cluster for the fault test), workers started as
separate processes standing in for hosts, the example site over HTTP, real Chromium. Workers use a
short ack wait and lease TTL (``workers_support.worker_env``) so a dead worker's account is taken
over within seconds; nothing here asserts a time tighter than "well before a timeout".
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import warmup
from nats_servers import NatsCluster, NatsServer, nats_cluster, nats_server, stream_name  # noqa: F401
from serving import serving_examples
from workers_support import (
    check_run,
    start_run,
    start_worker,
    stop,
    stream_events,
    tables,
    wait_for,
    worker_env,
)

from warmup.log import open_log_backend

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def example_site() -> Iterator[str]:
    with serving_examples() as base:
        yield base


def task_text(site: str, accounts: int, *, wait_ms: int = 0, task_id: str = "hosts") -> str:
    """The example site's login and feed, for ``accounts`` accounts (``u00``...); ``wait_ms`` on the feed."""
    people = "\n".join(f'[[accounts]]\nid = "u{i:02d}"\nvars = {{ user = "u{i:02d}" }}\n' for i in range(accounts))
    pause = f"\n[[steps]]\nwait_ms = {wait_ms}\n" if wait_ms else ""
    return f"""id = "{task_id}"
concurrency = 2
account_timeout_s = 90
timeout_ms = 15000
{people}
[[steps]]
goto = "{site}/login.html"

[[steps]]
fill = "#user"
value = "${{account.user}}"

[[steps]]
fill = "#password"
value = "${{env.WARMUP_DEMO_PASSWORD}}"

[[steps]]
click = "#go"

[[steps]]
expect_text = {{ selector = "#who", text = "Signed in as ${{account.user}}" }}

[[steps]]
goto = "{site}/feed.html"
{pause}
[[steps]]
wait_for = "#feed"
"""


def run_id_of(stdout: str) -> str:
    return stdout.split()[1].rstrip(":")


def test_two_workers_share_a_run_and_its_tables_match_a_replay(
    example_site: str, nats_server: NatsServer, tmp_path: Path  # noqa: F811
) -> None:
    url = f"{nats_server.url}/{stream_name('share')}"
    env = worker_env(WARMUP_DEMO_PASSWORD=PASSWORD)
    task = tmp_path / "task.toml"
    task.write_text(task_text(example_site, 6))
    workers = [start_worker(url, tmp_path / f"art{i}", env, "--concurrency", "2") for i in range(2)]
    try:
        done = warmup("run", str(task), "--log", url, "--workers", "--db", str(tmp_path / "live.db"), env=env,
                      timeout=240)
    finally:
        outs = [stop(w) for w in workers]
    assert done.returncode == 0, done.stderr + "".join(o[1] for o in outs)
    assert "6 completed of 6 accounts" in done.stdout
    said = done.stderr + "".join(err for _, err in outs)
    assert said.count("created the stream") == 1, said  # by whichever process came first
    run_id = run_id_of(done.stdout)
    events = stream_events(url)
    by = check_run(events, run_id, [f"u{i:02d}" for i in range(6)])
    assert all(len(seq) == 2 for seq in by.values())  # one attempt each: started, finished
    started = next(e for e in events if e["type"] == "run_started")
    assert started["workers"] is True
    drivers = {e["worker"] for e in events if e["type"] == "account_started"}
    assert len(drivers) == 2, drivers  # both workers drove accounts
    assert PASSWORD not in str(events) + done.stdout + done.stderr
    for code, (out, err) in zip((w.returncode for w in workers), outs, strict=True):
        assert code == 130, err  # stopped by Ctrl-C, as a user stops a worker
        assert "worker " in out and PASSWORD not in out + err

    # the run command's projector child built the live tables from the stream; a replay agrees
    assert warmup("replay", "--log", url, "--db", str(tmp_path / "replay.db"), env=env).returncode == 0
    assert tables(tmp_path / "live.db") == tables(tmp_path / "replay.db")
    shown = warmup("show", run_id, "--db", str(tmp_path / "replay.db"), env=env)
    assert shown.returncode == 0 and "6 completed" in shown.stdout


def test_a_killed_worker_s_account_is_interrupted_then_taken_over(
    example_site: str, nats_server: NatsServer, tmp_path: Path  # noqa: F811
) -> None:
    url = f"{nats_server.url}/{stream_name('kill')}"
    env = worker_env(WARMUP_DEMO_PASSWORD=PASSWORD)
    task = tmp_path / "task.toml"
    task.write_text(task_text(example_site, 4, wait_ms=4000))
    victim = start_worker(url, tmp_path / "victim", env, "--concurrency", "1")
    run = start_run(["run", str(task), "--log", url, "--workers", "--no-project"], env)
    survivor = None
    try:
        # the victim is mid-account (its account_started is in the log): kill it like a lost host
        wait_for(lambda: any(e["type"] == "account_started" for e in _events_or_none(url)), 120,
                 "the first account to start")
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        survivor = start_worker(url, tmp_path / "survivor", env, "--concurrency", "2")
        out, err = run.communicate(timeout=240)
    finally:
        stop(run)
        if survivor is not None:
            stop(survivor)
    assert run.returncode == 0, err
    run_id = run_id_of(out)
    events = stream_events(url)
    by = check_run(events, run_id, [f"u{i:02d}" for i in range(4)])
    killed = [a for a, seq in by.items() if any(e.get("status") == "INTERRUPTED" for e in seq)]
    assert len(killed) == 1, by
    seq = by[killed[0]]
    assert [(e["type"], e.get("status"), e["attempt"]) for e in seq] == [
        ("account_started", None, 1), ("account_finished", "INTERRUPTED", 1),
        ("account_started", None, 2), ("account_finished", "COMPLETED", 2)]
    assert seq[1]["retrying"] is True and "its worker stopped" in seq[1]["error"]
    assert seq[0]["worker"] != seq[2]["worker"]  # taken over by the other worker


def _events_or_none(url: str) -> list[dict]:
    try:
        return stream_events(url)
    except Exception:  # (the stream may not exist yet)
        return []


def test_ctrl_c_of_the_coordinator_stops_the_run_everywhere(
    example_site: str, nats_server: NatsServer, tmp_path: Path  # noqa: F811
) -> None:
    url = f"{nats_server.url}/{stream_name('stop')}"
    env = worker_env(WARMUP_DEMO_PASSWORD=PASSWORD)
    task = tmp_path / "task.toml"
    task.write_text(task_text(example_site, 6, wait_ms=8000))
    worker = start_worker(url, tmp_path / "art", env, "--concurrency", "2")
    run = start_run(["run", str(task), "--log", url, "--workers", "--no-project"], env)
    try:
        wait_for(lambda: sum(e["type"] == "account_started" for e in _events_or_none(url)) >= 2, 120,
                 "two accounts to start")
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=120)
        # the worker is still alive, and takes new work: nothing of this run is left queued
        assert worker.poll() is None
    finally:
        stop(run)
        w_out, w_err = stop(worker)
    assert run.returncode == 130, err
    run_id = run_id_of(out)
    events = stream_events(url)
    by = check_run(events, run_id, [f"u{i:02d}" for i in range(6)])
    finals = {a: next(e for e in seq if e["type"] == "account_finished" and not e.get("retrying"))
              for a, seq in by.items()}
    statuses = sorted(f["status"] for f in finals.values())
    assert statuses.count("INTERRUPTED") >= 1 and statuses.count("CANCELLED") >= 1, statuses
    assert "COMPLETED" not in statuses  # 8 s on the feed: none could finish before the stop
    finished = next(e for e in events if e["type"] == "run_finished" and e["run_id"] == run_id)
    assert finished["status"] == "INTERRUPTED"


def test_workers_need_a_stream_and_say_so(tmp_path: Path) -> None:
    env = worker_env(WARMUP_DEMO_PASSWORD=PASSWORD)
    worker = warmup("worker", "--log", str(tmp_path / "events.jsonl"), env=env)
    assert worker.returncode == 2 and "give --log nats://" in worker.stderr
    assert "Traceback" not in worker.stderr
    task = tmp_path / "task.toml"
    task.write_text(task_text("http://127.0.0.1:9", 1))
    run = warmup("run", str(task), "--log", str(tmp_path / "events.jsonl"), "--workers", env=env)
    assert run.returncode == 2 and "--workers hands accounts out through a stream" in run.stderr
    assert not (tmp_path / "events.jsonl").exists()


@pytest.mark.faults
def test_three_workers_thirty_accounts_a_killed_worker_and_a_stopped_node(
    example_site: str, nats_cluster: NatsCluster, tmp_path: Path  # noqa: F811
) -> None:
    """The issue's fault test: 3 workers x 30 accounts on a 3-node cluster (replicas 3). During the run
    one worker is SIGKILLed mid-account and one nats-server node is stopped, then restarted."""
    stream = stream_name("hosts")
    url = f"{nats_cluster.url}/{stream}"
    # A node's election can take a few seconds: a lease lives 8 s, a work item's ack wait is 6 s.
    env = worker_env(WARMUP_DEMO_PASSWORD=PASSWORD, WARMUP_LEASE_TTL_S="8", WARMUP_WORK_ACK_WAIT_S="6",
                     WARMUP_NATS_REPLICAS="3")  # whoever comes first creates the streams and the bucket R3
    task = tmp_path / "task.toml"
    accounts = [f"u{i:02d}" for i in range(30)]
    task.write_text(task_text(example_site, 30, wait_ms=1500))
    workers = [start_worker(url, tmp_path / f"art{i}", env, "--concurrency", "2") for i in range(3)]
    run = start_run(["run", str(task), "--log", url, "--workers", "--replicas", "3",
                     "--db", str(tmp_path / "live.db")], env)
    node = nats_cluster.nodes[2]
    try:
        # SIGKILL worker 0 once it is mid-account
        def victim_busy() -> bool:
            started: dict[str, int] = {}
            for e in _events_or_none(url):
                if e["type"] == "account_started" and e.get("worker", "").endswith(f" {workers[0].pid}"):
                    started[e["account_id"]] = e["attempt"]
                elif e["type"] == "account_finished" and started.get(e["account_id"]) == e["attempt"]:
                    del started[e["account_id"]]
            return bool(started)

        wait_for(victim_busy, 180, "worker 0 to be driving an account")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(30)
        # then stop a node while the others go on, and bring it back
        node.stop()
        time.sleep(3)
        node.restart()
        out, err = run.communicate(timeout=420)
    finally:
        stop(run)
        outs = [stop(w) for w in workers[1:]]
        if node.proc is None or node.proc.poll() is not None:
            node.restart()
    assert run.returncode == 0, err + "".join(o[1] for o in outs)
    assert "30 completed of 30 accounts" in out
    run_id = run_id_of(out)
    events = stream_events(url)
    by = check_run(events, run_id, accounts)
    victim = f" {workers[0].pid}"
    killed = [a for a, seq in by.items() if seq[0].get("worker", "").endswith(victim) and len(seq) > 2]
    assert killed, "the killed worker's account was not taken over"
    for account in killed:
        seq = by[account]
        assert seq[1]["status"] == "INTERRUPTED" and seq[1]["retrying"] is True
        assert seq[-1]["status"] == "COMPLETED" and not seq[-2]["worker"].endswith(victim)
    assert len({e["id"] for e in events}) == len(events)  # no event twice (publishes retried by id)
    info = open_log_backend(url).info()  # type: ignore[attr-defined]
    assert info is not None and info["config"]["num_replicas"] == 3
    spread = {}
    for e in events:
        if e["type"] == "account_started":
            spread[e["worker"]] = spread.get(e["worker"], 0) + 1
    assert len(spread) == 3, spread  # every worker drove accounts

    # project == replay == a copy into a file, replayed
    copy = tmp_path / "copy.jsonl"
    copied = warmup("log", "copy", url, str(copy), env=env)
    assert copied.returncode == 0, copied.stderr
    assert warmup("replay", "--log", url, "--db", str(tmp_path / "replay.db"), env=env).returncode == 0
    assert warmup("replay", "--log", str(copy), "--db", str(tmp_path / "file.db"), env=env).returncode == 0
    projected = warmup("project", "--log", url, "--db", str(tmp_path / "live.db"), env=env)
    assert projected.returncode == 0, projected.stderr
    live, replayed, from_file = (tables(tmp_path / n) for n in ("live.db", "replay.db", "file.db"))
    assert live == replayed == from_file
