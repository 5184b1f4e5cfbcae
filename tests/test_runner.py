"""``warmup run`` end to end: real Chromium, the test site on 127.0.0.1, the CLI in a subprocess."""

from __future__ import annotations

import hashlib
import os
import pty
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from conftest import REPO, Workdir, cli_env, warmup

from warmup.events.envelope import decode

pytestmark = pytest.mark.browser


def by_account(events: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        if "account_id" in event:
            grouped[event["account_id"]].append(event)
    return grouped


def final(events: list[dict], account_id: str) -> dict:
    return [e for e in events if e["type"] == "account_finished" and e["account_id"] == account_id][-1]


def test_three_accounts_at_concurrency_2_one_failing(site: str, work: Workdir) -> None:
    task = work.task(f"""
id = "three"
concurrency = 2
[[accounts]]
id = "a1"
vars = {{ sel = "#feed" }}
[[accounts]]
id = "a2"
vars = {{ sel = "#feed" }}
[[accounts]]
id = "a3"
vars = {{ sel = "#missing" }}

[[steps]]
goto = "{site}/feed"
[[steps]]
scroll = 2
pause_ms = 50
[[steps]]
click = "#more"
[[steps]]
expect_title = "Feed (more)"
[[steps]]
wait_ms = 400
[[steps]]
wait_for = "${{account.sel}}"
timeout_ms = 800
""")
    result = warmup(*work.run_args(task))  # --project is the default: the tables fill beside the run
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    events = work.events()
    types = [e["type"] for e in events]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    started, finished = events[0], events[-1]
    run_id = started["run_id"]
    assert started["accounts"] == ["a1", "a2", "a3"] and started["steps"] == 6 and started["concurrency"] == 2
    assert started["task"]["steps"][5] == {"wait_for": "${account.sel}", "timeout_ms": 800}
    assert started["resumed_from"] is None and started["task_id"] == "three"
    assert finished["status"] == "FAILED"
    assert finished["task_id"] == "three"  # (so a consumer needs no memory of runs)
    assert {e["task_id"] for e in events if e["type"] == "account_finished"} == {"three"}

    grouped = by_account(events)
    for account_id, n_steps in (("a1", 6), ("a2", 6), ("a3", 6)):
        seq = grouped[account_id]
        assert seq[0]["type"] == "account_started" and seq[0]["attempt"] == 1
        assert seq[-1]["type"] == "account_finished"
        steps = [e for e in seq if e["type"] == "step_finished"]
        assert [s["index"] for s in steps] == list(range(n_steps))
        assert [s["action"] for s in steps] == ["goto", "scroll", "click", "expect_title", "wait_ms", "wait_for"]
        assert all(isinstance(s["duration_ms"], float) for s in steps)
    assert final(events, "a1")["status"] == final(events, "a2")["status"] == "COMPLETED"
    failed = final(events, "a3")
    assert failed["status"] == "FAILED" and failed["retrying"] is False
    assert "step 6 (wait_for)" in failed["error"] and "800ms" in failed["error"]
    bad_step = [e for e in grouped["a3"] if e["type"] == "step_finished"][-1]
    assert bad_step["ok"] is False and bad_step["url"] == f"{site}/feed" and "#missing" in bad_step["error"]

    # a1 and a2 ran at the same time; a3 waited for a free slot.
    start = {e["account_id"]: e["ts"] for e in events if e["type"] == "account_started"}
    end = {e["account_id"]: e["ts"] for e in events if e["type"] == "account_finished"}
    assert max(start["a1"], start["a2"]) < min(end["a1"], end["a2"])
    assert start["a3"] >= min(end["a1"], end["a2"])

    # the failure screenshot is on disk and recorded, and its half-size thumbnail for reports
    shots = [e for e in events if e["type"] == "artifact_saved"]
    assert [(s["account_id"], s["kind"], s["path"]) for s in shots] == [
        ("a3", "failure", f"{run_id}/a3/failure-1.png"), ("a3", "thumbnail", f"{run_id}/a3/failure-1.thumb.png"),
        ("a3", "trace", f"{run_id}/a3/trace-1.zip")]  # (trace = "on-failure" by default: test_traces.py)
    png = (work.artifacts / shots[0]["path"]).read_bytes()
    assert png.startswith(b"\x89PNG") and hashlib.sha256(png).hexdigest() == shots[0]["sha256"]
    assert shots[0]["bytes"] == len(png)
    thumb = (work.artifacts / shots[1]["path"]).read_bytes()
    assert thumb.startswith(b"\x89PNG") and len(thumb) < len(png)
    assert int.from_bytes(thumb[16:20], "big") * 2 == int.from_bytes(png[16:20], "big")  # PNG width: half
    assert f"run {run_id}: FAILED" in result.stdout

    # the projector child filled the tables
    db = sqlite3.connect(work.db)
    db.row_factory = sqlite3.Row
    run = db.execute("select * from runs where id = ?", (run_id,)).fetchone()
    assert run is not None, "the projector did not record the run"
    assert (run["status"], run["accounts_total"], run["accounts_completed"], run["accounts_failed"]) == (
        "FAILED", 3, 2, 1,
    )  # fmt: skip
    assert run["started_at"] and run["completed_at"]
    rows = {r["account_id"]: r for r in db.execute("select * from run_accounts where run_id = ?", (run_id,))}
    assert {k: r["status"] for k, r in rows.items()} == {"a1": "COMPLETED", "a2": "COMPLETED", "a3": "FAILED"}
    assert all(r["started_at"] and r["completed_at"] for r in rows.values())
    assert "800ms" in rows["a3"]["error"]
    accounts = {r["id"]: r for r in db.execute("select * from accounts")}
    assert (accounts["a1"]["warm_count"], accounts["a1"]["fail_count"]) == (1, 0) and accounts["a1"]["warmed_at"]
    assert (accounts["a3"]["warm_count"], accounts["a3"]["fail_count"]) == (0, 1)
    assert "800ms" in accounts["a3"]["last_error"]
    artifact = db.execute("select * from artifacts where run_id = ?", (run_id,)).fetchone()
    assert artifact["account_id"] == "a3" and artifact["kind"] == "failure"
    assert artifact["path"] == f"{run_id}/a3/failure-1.png" and artifact["sha256"] == shots[0]["sha256"]


def test_storage_state_carries_a_cookie_into_the_next_run(site: str, work: Workdir) -> None:
    sign_in = work.task(f"""
storage_state = "states/${{account.id}}.json"
[[accounts]]
id = "alice"
[[steps]]
goto = "{site}/login"
[[steps]]
fill = "#user"
value = "alice"
[[steps]]
click = "#go"
[[steps]]
expect_text = {{ selector = "#who", text = "alice" }}
""", "sign-in.toml")
    check = work.task(f"""
storage_state = "states/${{account.id}}.json"
[[accounts]]
id = "alice"
[[accounts]]
id = "stranger"
[[steps]]
goto = "{site}/whoami"
[[steps]]
expect_text = {{ selector = "#who", text = "alice" }}
timeout_ms = 500
""", "check.toml")
    first = warmup(*work.run_args(sign_in, "--no-project"))
    assert first.returncode == 0, first.stderr
    state = work.root / "states" / "alice.json"
    assert state.stat().st_mode & 0o777 == 0o600
    assert any(c["name"] == "session" and c["value"] == "alice" for c in orjson.loads(state.read_bytes())["cookies"])

    second = warmup(*work.run_args(check, "--no-project"))
    assert second.returncode == 1, second.stderr  # the stranger has no saved state: not signed in
    events = work.events()
    assert final(events, "alice")["status"] == "COMPLETED"
    stranger = final(events, "stranger")
    assert stranger["status"] == "FAILED" and "'nobody'" in stranger["error"]
    assert not (work.root / "states" / "stranger.json").exists()  # state is saved after success only


SENTINEL = "Sentinel-S3cret-7f3a9"


def test_an_env_secret_appears_nowhere(site: str, work: Workdir) -> None:
    task = work.task(f"""
[[accounts]]
id = "alice"
vars = {{ password = "${{env.WARMUP_TEST_SECRET}}" }}
[[steps]]
goto = "{site}/echo?token=${{env.WARMUP_TEST_SECRET}}"
[[steps]]
expect_text = {{ selector = "#q", text = "token=${{account.password}}" }}
[[steps]]
screenshot = "echo-${{account.id}}"
[[steps]]
expect_text = {{ selector = "#q", text = "something else" }}
timeout_ms = 300
""")
    env = cli_env(WARMUP_TEST_SECRET=SENTINEL)
    result = warmup(*work.run_args(task, "--no-project"), env=env)
    assert result.returncode == 1, result.stderr
    events = work.events()
    failed = [e for e in events if e["type"] == "step_finished" and not e["ok"]]
    # The secret really was used (step 2 passed) and really flowed into an error text and a URL...
    assert [e["index"] for e in failed] == [3]
    assert "token=***" in failed[0]["error"] and failed[0]["url"] == f"{site}/echo?token=***"
    # ...and is nowhere: not in the log, the output, artifact names or the state.
    assert SENTINEL.encode() not in work.log.read_bytes()
    assert SENTINEL not in result.stdout + result.stderr
    assert "***" in result.stderr  # the failure line shows the scrubbed text
    files = [p for p in work.root.rglob("*")]
    assert any(p.name == "echo-alice.png" for p in files) and any(p.name == "failure-1.png" for p in files)
    for path in files:
        assert SENTINEL not in str(path)
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes()
    assert started_record(events)["accounts"][0]["vars"]["password"] == "${env.WARMUP_TEST_SECRET}"


def started_record(events: list[dict]) -> dict:
    return events[0]["task"]


def test_retries_timeouts_optional_steps_and_http_errors(site: str, work: Workdir) -> None:
    # The account timeout is far above what an attempt takes on a loaded single core (1.5 s was not),
    # and far below the slow page's 60 s: which side of it each account lands on is never a race.
    task = work.task(f"""
concurrency = 3
retries = 1
account_timeout_s = 8
[[accounts]]
id = "flaky"
vars = {{ url = "{site}/flaky?key=${{account.id}}-{time.time_ns()}", ms = "0" }}
[[accounts]]
id = "slowpoke"
vars = {{ url = "{site}/feed", ms = "60000" }}
[[accounts]]
id = "broken"
vars = {{ url = "{site}/broken", ms = "0" }}
[[steps]]
click = "#nothing-here"
optional = true
timeout_ms = 200
[[steps]]
goto = "${{account.url}}"
[[steps]]
goto = "{site}/slow?ms=${{account.ms}}"
""")
    result = warmup(*work.run_args(task, "--no-project"))
    assert result.returncode == 1, result.stderr
    events = work.events()
    grouped = by_account(events)
    # flaky: the first attempt gets HTTP 500, the retry passes
    flaky = [(e["type"], e.get("attempt"), e.get("status"), e.get("retrying")) for e in grouped["flaky"]
             if e["type"] in ("account_started", "account_finished")]
    assert flaky == [
        ("account_started", 1, None, None),
        ("account_finished", 1, "FAILED", True),
        ("account_started", 2, None, None),
        ("account_finished", 2, "COMPLETED", False),
    ]
    first_error = [e for e in grouped["flaky"] if e["type"] == "account_finished"][0]["error"]
    assert "HTTP 500" in first_error
    # the optional step failed, was recorded, and the account went on
    optional = [e for e in grouped["flaky"] if e["type"] == "step_finished" and e["index"] == 0]
    assert all(e["ok"] is False and e["optional"] is True for e in optional)
    # slowpoke: cut off by the account timeout, twice
    slow = final(events, "slowpoke")
    assert slow["status"] == "FAILED" and slow["attempt"] == 2
    assert "account timeout: 8 s reached during step 3 (goto)" in slow["error"]
    cut = [e for e in grouped["slowpoke"] if e["type"] == "step_finished" and e["index"] == 2]
    assert len(cut) == 2 and not cut[0]["ok"] and "account timeout" in cut[0]["error"]
    # broken: HTTP 500 both times
    assert final(events, "broken")["status"] == "FAILED" and "HTTP 500" in final(events, "broken")["error"]
    assert events[-1]["status"] == "FAILED"


def test_sigint_interrupts_running_accounts_and_cancels_the_rest(site: str, work: Workdir) -> None:
    task = work.task(f"""
concurrency = 2
accounts_file = "accounts.csv"
[[steps]]
goto = "{site}/feed"
[[steps]]
wait_ms = 30000
""")
    (work.root / "accounts.csv").write_text("id\nu1\nu2\nu3\nu4\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", *work.run_args(task, "--no-project")],
        cwd=REPO,
        env=cli_env(WARMUP_GRACE_S="0.5"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            steps = [e for e in work.events() if e["type"] == "step_finished"]
            if len(steps) >= 2:  # both running accounts are inside their long wait
                break
            time.sleep(0.05)
        else:
            pytest.fail("the run never got going")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err  # and u1 INTERRUPTED during its wait (below): it did not sit out the 30 s
    assert "Traceback" not in err
    raw = work.log.read_bytes()
    assert raw.endswith(b"\n")
    events = [decode(line) for line in raw.splitlines()]  # every line whole and valid
    outcome = {e["account_id"]: (e["status"], e["attempt"]) for e in events if e["type"] == "account_finished"}
    assert outcome == {
        "u1": ("INTERRUPTED", 1),
        "u2": ("INTERRUPTED", 1),
        "u3": ("CANCELLED", 0),
        "u4": ("CANCELLED", 0),
    }
    assert "during step 2 (wait_ms)" in final(events, "u1")["error"]
    assert {e["account_id"] for e in events if e["type"] == "account_started"} == {"u1", "u2"}
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "INTERRUPTED"
    assert "SIGINT" in events[-1]["reason"]
    assert ": INTERRUPTED:" in out


def test_no_browser_is_one_line_and_exit_1(work: Workdir) -> None:
    task = work.task('[[accounts]]\nid = "a"\n[[steps]]\nwait_ms = 1\n')
    missing = warmup(*work.run_args(task, "--no-project", "--browser-path", str(work.root / "no-chrome")))
    assert missing.returncode == 2 and missing.stderr.startswith("warmup: --browser-path: no such file"), missing.stderr
    not_a_browser = work.root / "fake-chrome"
    not_a_browser.write_text("#!/bin/sh\nexit 3\n")
    not_a_browser.chmod(0o755)
    broken = warmup(*work.run_args(task, "--no-project", "--browser-path", str(not_a_browser)))
    assert broken.returncode == 1, broken.stderr
    assert broken.stderr.startswith("warmup: cannot start the browser") and broken.stderr.count("\n") == 1
    assert "it exited at once (exit code 3)" in broken.stderr
    assert not work.log.exists() or work.log.read_bytes() == b""


def test_a_log_that_cannot_be_written_stops_the_run_with_one_line(work: Workdir) -> None:
    task = work.task('[[accounts]]\nid = "a"\n[[accounts]]\nid = "b"\n[[steps]]\nwait_ms = 1\n')
    result = warmup("run", str(task), "--log", "/dev/full", "--no-project", "--artifacts", str(work.artifacts))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == "warmup: cannot append to the event log /dev/full: the disk is full"
    assert "Traceback" not in result.stderr
    assert "a: CANCELLED (not started: the event log could not be written)" in result.stderr


def test_a_terminal_gets_a_progress_bar(site: str, work: Workdir) -> None:
    task = work.task(f'[[accounts]]\nid = "solo"\n[[steps]]\ngoto = "{site}/feed"\n')
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", *work.run_args(task, "--no-project")],
        cwd=REPO, env=cli_env(TERM="xterm", COLUMNS="120"), stdout=subprocess.PIPE, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, screen
    assert "1 done, 0 failed / 1" in screen and "solo: " in screen and "COMPLETED" in screen
    assert "\x1b[" in screen  # drawn with terminal control sequences, not plain lines


def projectors_of(db: Path) -> list[int]:
    """Processes running ``warmup project --follow`` on ``db``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if " project --follow --quiet " in cmdline and str(db) in cmdline:
                found.append(int(entry))
    return found


def test_sigterm_with_the_projector_stops_both_and_the_tables_say_interrupted(site: str, work: Workdir) -> None:
    task = work.task(f"""
concurrency = 1
accounts_file = "accounts.csv"
[[steps]]
goto = "{site}/feed"
[[steps]]
wait_ms = 30000
""")
    (work.root / "accounts.csv").write_text("id\nt1\nt2\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", *work.run_args(task)],
        cwd=REPO, env=cli_env(WARMUP_GRACE_S="0.2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not any(e["type"] == "step_finished" for e in work.events()):
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.05)
        assert projectors_of(work.db), "no projector child beside the run"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert projectors_of(work.db) == []  # the projector child did not outlive the run
    db = sqlite3.connect(work.db)
    run_id = work.events()[0]["run_id"]
    assert db.execute("select status from runs where id = ?", (run_id,)).fetchone() == ("INTERRUPTED",)
    statuses = dict(db.execute("select account_id, status from run_accounts where run_id = ?", (run_id,)))
    assert statuses == {"t1": "INTERRUPTED", "t2": "CANCELLED"}


def test_a_second_sigint_stops_at_once_without_waiting_for_the_grace_period(site: str, work: Workdir) -> None:
    task = work.task(f'[[accounts]]\nid = "solo"\n[[steps]]\ngoto = "{site}/feed"\n[[steps]]\nwait_ms = 30000\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", *work.run_args(task, "--no-project")],
        cwd=REPO, env=cli_env(WARMUP_GRACE_S="60"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not any(e["type"] == "step_finished" for e in work.events()):
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.stderr is not None
        for said in proc.stderr:  # until the runner took the first one (two pending SIGINTs would merge into one)
            if "again to stop now" in said:
                break
        assert proc.poll() is None  # the first one only starts the 60 s grace period
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)  # far less than the grace period
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "again: stopping now" in err
    assert final(work.events(), "solo")["status"] == "INTERRUPTED"


def test_a_secret_echoed_by_failures_is_scrubbed_everywhere_even_cut_short(site: str, work: Workdir) -> None:
    # The page shows the secret after 70 characters, so an expectation's error text (cut at 80) holds
    # only its start; a goto answered with HTTP 500 echoes it in its URL; a fill into a non-field gets it as its value.
    pad = "p" * 70
    task = work.task(f"""
retries = 1
[[accounts]]
id = "alice"
vars = {{ password = "${{env.WARMUP_TEST_SECRET}}" }}
[[steps]]
goto = "{site}/broken?token=${{env.WARMUP_TEST_SECRET}}"
optional = true
[[steps]]
goto = "{site}/echo?{pad}${{account.password}}"
[[steps]]
fill = "#q"
value = "${{account.password}}"
optional = true
timeout_ms = 300
[[steps]]
expect_text = {{ selector = "#q", text = "not there" }}
timeout_ms = 300
""")
    result = warmup(*work.run_args(task), env=cli_env(WARMUP_TEST_SECRET=SENTINEL))  # with the projector child
    assert result.returncode == 1, result.stderr
    events = work.events()
    failed = [e for e in events if e["type"] == "step_finished" and not e["ok"]]
    assert {e["index"] for e in failed} == {0, 2, 3}, [e["error"] for e in failed]
    expect = [e for e in failed if e["index"] == 3][0]
    assert "***…" in expect["error"]  # it really was cut inside the secret
    assert "token=***" in [e for e in failed if e["index"] == 0][0]["error"]
    pieces = [SENTINEL, SENTINEL[:6], SENTINEL[-6:]]
    outputs = result.stdout + result.stderr
    assert not any(p in outputs for p in pieces), outputs
    files = list(work.root.rglob("*"))
    assert any(p.suffix == ".db" for p in files) and any(p.name.startswith("failure-") for p in files)
    for path in files:
        assert not any(p in str(path) for p in pieces)
        if path.is_file() and not path.name.startswith("failure-"):  # pixels cannot be checked
            data = path.read_bytes()
            assert not any(p.encode() in data for p in pieces), path


# Secrets made of each special character an escaping touches. Whatever form one takes in a message
# (JSON-quoted by Playwright, CSS-quoted in a selector, HTML-escaped in the page, URL-encoded), its
# letters stay: "Kq7" and "Wm3" must be nowhere.
SPECIAL_SECRETS = {
    "bs": "Kq7\\Zv\\Wm3",
    "dq": 'Kq7"Zv"Wm3',
    "sq": "Kq7'Zv'Wm3",
    "lt": "Kq7<Zv>Wm3",
    "amp": "Kq7&Zv&Wm3",
    "all": "Kq7\\\"'<&>Wm3",
}


def test_secrets_of_special_characters_in_selectors_and_pages_are_scrubbed_in_every_form(
    site: str, work: Workdir
) -> None:
    accounts = "".join(
        f'[[accounts]]\nid = "{name}"\nvars = {{ password = "${{env.WARMUP_TEST_SECRET_{name.upper()}}}" }}\n'
        for name in SPECIAL_SECRETS
    )
    task = work.task("concurrency = 3\n" + accounts + f"""
[[steps]]
goto = "{site}/login"
[[steps]]
fill = "#user"
value = "${{account.password}}"
[[steps]]
goto = "{site}/echo?${{account.password}}"
[[steps]]
expect_text = {{ selector = "#q", text = "${{account.password}}" }}
[[steps]]
fill = "#q"
value = "${{account.password}}"
optional = true
timeout_ms = 300
[[steps]]
click = "text=${{account.password}}-absent"
optional = true
timeout_ms = 300
[[steps]]
click = 'input[value="${{account.password}}"]'
optional = true
timeout_ms = 300
[[steps]]
wait_for = "[title='${{account.password}}']"
optional = true
timeout_ms = 300
[[steps]]
expect_title = "${{account.password}}"
optional = true
timeout_ms = 300
[[steps]]
expect_text = {{ selector = "#q", text = "absent ${{account.password}}" }}
timeout_ms = 300
""")
    env = cli_env(**{f"WARMUP_TEST_SECRET_{name.upper()}": secret for name, secret in SPECIAL_SECRETS.items()})
    result = warmup(*work.run_args(task, "--no-project"), env=env)
    assert result.returncode == 1, result.stderr
    events = work.events()
    steps = [e for e in events if e["type"] == "step_finished"]
    # the secret really was typed, sent, shown by the page and matched there (step 4 passed)...
    for name in SPECIAL_SECRETS:
        mine = {e["index"]: e for e in steps if e["account_id"] == name}
        assert all(mine[i]["ok"] for i in (0, 1, 2, 3)), [(i, e["error"]) for i, e in mine.items()]
        assert not mine[9]["ok"] and "***" in mine[9]["error"], mine[9]["error"]
        assert all(not mine[i]["ok"] for i in (4, 5, 6, 7, 8)), [(i, e["error"]) for i, e in mine.items()]
        assert final(events, name)["status"] == "FAILED"
    # ...and came back in the errors of every failed step, which hold it only as ***
    quoting = [e for e in steps if e["index"] >= 5]
    assert all("***" in e["error"] for e in quoting), [e["error"] for e in quoting]
    pieces = ("Kq7", "Wm3")
    log = work.log.read_text()
    assert not any(p in log for p in pieces), [line for line in log.splitlines() if any(p in line for p in pieces)]
    outputs = result.stdout + result.stderr
    assert not any(p in outputs for p in pieces), outputs
    files = list(work.root.rglob("*"))
    assert any(p.name.startswith("failure-") for p in files)
    for path in files:
        assert not any(p in str(path) for p in pieces)
        if path.is_file() and path.suffix != ".png":  # pixels cannot be checked
            assert not any(p.encode() in path.read_bytes() for p in pieces), path


def test_a_short_secret_is_named_in_one_warning_and_the_run_goes_on(site: str, work: Workdir) -> None:
    task = work.task(f"""
[[accounts]]
id = "a1"
[[accounts]]
id = "a2"
[[steps]]
goto = "{site}/login?from=7x3"
[[steps]]
fill = "#pass"
value = "${{env.WARMUP_TEST_PIN}}"
""")
    # the value is in the goto URL too: a short secret there is warned about, not refused
    result = warmup(*work.run_args(task, "--no-project"), env=cli_env(WARMUP_TEST_PIN="7x3"))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "shorter than 4 characters" in line]
    assert len(warnings) == 1 and "${env.WARMUP_TEST_PIN}" in warnings[0] and "7x3" not in warnings[0], result.stderr
