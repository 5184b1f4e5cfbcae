"""Every command that takes a log, with ``--log nats://...`` (issue 12), run as a user runs them.

A real nats-server (with a password for the credentials test), the test site, real Chromium; a run
killed with SIGKILL and recovered from the stream by ``warmup recover`` once its lease expired.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import warmup
from nats_servers import NatsServer, nats_server, stream_name  # noqa: F401
from workers_support import start_run, stream_events, tables, wait_for, worker_env

pytestmark = pytest.mark.browser

SECRET = "pw-Secret-4242"
NATS_PASSWORD = "nats-Pass-7777"


def task(site: str, accounts: int = 2, wait_ms: int = 0) -> str:
    people = "\n".join(f'[[accounts]]\nid = "a{i}"\n' for i in range(accounts))
    pause = f"\n[[steps]]\nwait_ms = {wait_ms}\n" if wait_ms else ""
    return f"""id = "streamed"
concurrency = 2
{people}
[[steps]]
goto = "{site}/echo?token=${{env.WARMUP_TEST_SECRET}}"
{pause}
[[steps]]
expect_text = {{ selector = "#q", text = "token" }}
"""


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats-auth-cli"), "auth", user="warmup", password=NATS_PASSWORD)
    try:
        yield server
    finally:
        server.stop()


def test_every_command_takes_a_stream_and_no_credential_leaks(
    site: str, auth_server: NatsServer, tmp_path: Path
) -> None:
    creds = tmp_path / "nats.creds"
    creds.write_text(f"warmup:{NATS_PASSWORD}\n")
    url = f"{auth_server.url}/{stream_name('cli')}"
    env = worker_env(WARMUP_TEST_SECRET=SECRET, WARMUP_NATS_CREDS=str(creds))
    path = tmp_path / "task.toml"
    path.write_text(task(site))
    db, out = tmp_path / "w.db", []
    ran = warmup("run", str(path), "--log", url, "--db", str(db), "--artifacts", str(tmp_path / "art"), env=env)
    out.append(ran)
    assert ran.returncode == 0, ran.stderr
    assert f"(log: {url})" in ran.stdout
    run_id = ran.stdout.split()[1].rstrip(":")
    for args in (
        ("project", "--log", url, "--db", str(db)),
        ("replay", "--log", url, "--db", str(tmp_path / "replayed.db")),
        ("tail", "--log", url, "-n", "all"),
        ("tail", "--log", url, "--run", run_id, "--type", "account_finished"),
        ("show", run_id, "--db", str(db), "--log", url),
        ("report", run_id, "--log", url, "--db", str(db), "--artifacts", str(tmp_path / "art"),
         "-o", str(tmp_path / "r.html")),
        ("recover", "--log", url),
        ("runs", "--db", str(db)),
    ):
        done = warmup(*args, env=env)
        assert done.returncode == 0, (args, done.stderr)
        out.append(done)
    tailed = out[4].stdout.splitlines()
    assert len(tailed) == 2 and all("account_finished COMPLETED" in line for line in tailed)
    assert tables(db) == tables(tmp_path / "replayed.db")
    # the credentials (and the task's secret) are nowhere: not in events, output, tables or the report
    seen = "".join(p.stdout + p.stderr for p in out) + str(stream_events_with(url, creds))
    seen += (tmp_path / "r.html").read_text()
    conn = sqlite3.connect(db)
    seen += str([conn.execute(f'SELECT * FROM "{t}"').fetchall()
                 for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")])
    conn.close()
    for secret in (NATS_PASSWORD, SECRET):
        assert secret not in seen
    # without the credentials: one line, exit 1, no password, no traceback
    refused = warmup("tail", "--log", url, env=worker_env())
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "refused the credentials" in refused.stderr or "authorization" in refused.stderr


def stream_events_with(url: str, creds: Path) -> list[dict]:
    """The stream's events, read by this process with the credentials file (read when a log is opened)."""
    os.environ["WARMUP_NATS_CREDS"] = str(creds)
    try:
        return stream_events(url)
    finally:
        del os.environ["WARMUP_NATS_CREDS"]


def test_a_killed_run_on_a_stream_is_recovered_once_its_lease_expires(
    site: str, nats_server: NatsServer, tmp_path: Path  # noqa: F811
) -> None:
    url = f"{nats_server.url}/{stream_name('dead')}"
    env = worker_env(WARMUP_TEST_SECRET=SECRET)
    path = tmp_path / "task.toml"
    path.write_text(task(site, accounts=3, wait_ms=20000))
    run = start_run(["run", str(path), "--log", url, "--no-project", "--artifacts", str(tmp_path / "art")], env)
    try:
        wait_for(lambda: sum(e["type"] == "account_started" for e in _events(url)) >= 2, 120, "accounts to start")
    finally:
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=30)
    early = warmup("recover", "--log", url, env=env)
    assert early.returncode == 0
    # its lease is alive for up to one TTL after the kill: recover either waits for it or closes it
    deadline = time.monotonic() + 30
    recovered = early
    while "recovered dead run" not in recovered.stdout:
        assert time.monotonic() < deadline, recovered.stdout
        time.sleep(0.5)
        recovered = warmup("recover", "--log", url, env=env)
    assert "run INTERRUPTED" in recovered.stdout
    events = _events(url)
    finished = [e for e in events if e["type"] == "account_finished"]
    assert sorted(e["status"] for e in finished) == ["CANCELLED", "INTERRUPTED", "INTERRUPTED"]
    assert events[-1]["type"] == "run_finished" and events[-1]["recovered"] is True
    again = warmup("recover", "--log", url, env=env)
    assert "no dead run" in again.stdout  # idempotent


def _events(url: str) -> list[dict]:
    try:
        return stream_events(url)
    except Exception:
        return []


def test_a_url_with_credentials_is_refused_without_quoting_them(tmp_path: Path) -> None:
    for url in ("nats://bob:s3cr/et@127.0.0.1:4222/WARMUP", "nats://bob:pa?ss#wd@127.0.0.1:4222",
                "nats://127.0.0.1:4222,bob:hunter2@127.0.0.2:4222/S"):
        done = warmup("tail", "--log", url, env=worker_env())
        assert done.returncode == 2, done.stderr
        assert done.stderr == ("warmup: credentials in a NATS URL are refused: name a credentials file in "
                               "WARMUP_NATS_CREDS\n")
