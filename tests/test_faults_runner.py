"""Fault injection on the runner side: real runners SIGKILLed, a full disk, a runner + projector + tail soak.

Marked ``faults`` so the suite can run on its own: ``pytest -m faults``. Every process is real: the
CLI in subprocesses, real Chromium against the local test site, a real (tiny) tmpfs for the full
disk. ``WARMUP_SOAK_S`` shortens or lengthens the soak (default 60 s).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, Workdir, cli_env, tmpfs
from projection_support import dump, rows, warmup

from warmup.events.envelope import decode
from warmup.events.writer import EventWriter
from warmup.locks import runs_dir

pytestmark = [pytest.mark.faults, pytest.mark.browser]


def start_run(work: Workdir, task: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cli", *work.run_args(task, *extra)], cwd=REPO,
                            env=env or cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def line_count(log: Path) -> int:
    try:
        return log.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text`` (our scratch paths are unique)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def assert_log_whole_and_projections_agree(work: Workdir, tmp: Path) -> list[dict]:
    EventWriter(work.log).close()  # the next writer to open the log cuts a torn tail, if any
    raw = work.log.read_bytes()
    assert raw == b"" or raw.endswith(b"\n")
    events = [decode(x) for x in raw.splitlines()]  # only whole, valid lines
    projected, replayed = tmp / "projected.db", tmp / "replayed.db"
    assert warmup("project", "--log", work.log, "--db", projected).returncode == 0
    assert warmup("replay", "--log", work.log, "--db", replayed).returncode == 0
    assert dump(projected) == dump(replayed)
    assert rows(projected, "SELECT * FROM run_accounts WHERE status IN ('RUNNING', 'PENDING')") == []
    assert rows(projected, "SELECT * FROM runs WHERE status = 'RUNNING'") == []
    assert rows(projected, "SELECT * FROM rejected_events") == []
    return events


# Kill when the log holds this many lines, 10 moments in all: never by the clock, so a loaded machine
# only makes a moment come later, not land somewhere else. 0: as soon as the log file exists (the
# runner creates it before its first event), which may be before or after run_started.
KILL_AT = [0, 1, 2, 4, 7, 10, 13, 16, 20, 23]


def wait_for_lines(proc: subprocess.Popen[str], log: Path, at: int) -> None:
    """Return once ``log`` exists and holds ``at`` complete lines; fail if the run ends first."""
    deadline = time.monotonic() + 120  # a bound on a hang, not a moment: the condition decides
    while not log.exists() or line_count(log) < at:
        assert proc.poll() is None, f"moment {at}: the run ended before the log got there"
        assert time.monotonic() < deadline, f"moment {at}: the log never got there"
        time.sleep(0.005)


def test_sigkill_the_runner_at_10_moments_then_recover(site: str, tmp_path: Path) -> None:
    recovered = 0
    for n, at in enumerate(KILL_AT):
        work = Workdir(tmp_path / f"kill-{n}")
        work.root.mkdir()
        task = work.task(f"""
concurrency = 2
[[accounts]]
id = "k1"
[[accounts]]
id = "k2"
[[accounts]]
id = "k3"
[[steps]]
goto = "{site}/feed"
[[steps]]
scroll = 2
pause_ms = 50
[[steps]]
screenshot = "feed"
[[steps]]
goto = "{site}/slow?ms=250"
""")
        proc = start_run(work, task)  # with its projector child: it must not outlive the runner
        try:
            wait_for_lines(proc, work.log, at)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if at == 10:  # as if it had died in the middle of writing a line
            with open(work.log, "ab") as f:
                f.write(b'{"v":1,"id":"half","type":"step_finished","run_')
        deadline = time.monotonic() + 60  # a bound on a hang: the child exits once it has drained the log
        while processes_mentioning(str(work.log)):  # the projector child drains and exits on its own
            assert time.monotonic() < deadline, f"moment {at}: processes outlived the runner"
            time.sleep(0.1)
        result = warmup("recover", "--log", work.log)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        recovered += "recovered dead run" in result.stdout
        if at == 10:
            assert "cut a torn last line" in result.stderr
        events = assert_log_whole_and_projections_agree(work, work.root)
        started = [e for e in events if e["type"] == "run_started"]
        if at >= 1:
            assert len(started) == 1, f"moment {at}"
        if started:
            run_id = started[0]["run_id"]
            assert [e for e in events if e["type"] == "run_finished"][-1]["run_id"] == run_id
            finals = {e["account_id"] for e in events if e["type"] == "account_finished" and not e.get("retrying")}
            assert finals == {"k1", "k2", "k3"}, f"moment {at}"
        assert not list(runs_dir(work.log).glob("*.lock"))  # type: ignore[union-attr]
    assert recovered >= 8  # the kills really landed mid-run


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 128 KiB tmpfs (we are root in the test machine); skipped where mounting is not allowed."""
    with tmpfs(tmp_path / "tiny", "128k") as mount:
        yield mount


def test_a_full_disk_stops_the_run_with_one_line_and_no_partial_line(site: str, tmp_path: Path,
                                                                      tiny_disk: Path) -> None:
    work = Workdir(tmp_path / "w")
    work.root.mkdir()
    log = tiny_disk / "events.jsonl"
    # Leave about one page free: the log gets a dozen events, then ENOSPC.
    filler = tiny_disk / "filler"
    free = shutil.disk_usage(tiny_disk).free
    filler.write_bytes(b"x" * (free - 4096 - 8192))  # the run lock and a page for the log
    accounts = "".join(f'[[accounts]]\nid = "d{i}"\n' for i in range(12))
    task = work.task(f'concurrency = 2\n{accounts}[[steps]]\ngoto = "{site}/feed"\n[[steps]]\nwait_ms = 50\n')
    result = subprocess.run(
        [sys.executable, "-m", "cli", "run", str(task), "--log", str(log), "--no-project",
         "--artifacts", str(work.artifacts)],
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"warmup: cannot append to the event log {log}: the disk is full"
    raw = log.read_bytes()
    assert raw.endswith(b"\n")
    events = [decode(x) for x in raw.splitlines()]
    started = {e["account_id"] for e in events if e["type"] == "account_started"}
    assert 0 < len(events) and len(started) < 12  # it stopped starting accounts
    # the run stays open (its lock with it), and is closed once there is room again
    assert len(list(runs_dir(log).glob("*.lock"))) == 1  # type: ignore[union-attr]
    filler.unlink()
    recovered = warmup("recover", "--log", log)
    assert recovered.returncode == 0 and "recovered dead run" in recovered.stdout, recovered.stderr
    work_log = Workdir(tiny_disk)
    assert_log_whole_and_projections_agree(work_log, tmp_path)


def test_runner_projector_and_tail_together_for_a_minute(site: str, tmp_path: Path) -> None:
    soak_s = float(os.environ.get("WARMUP_SOAK_S", "60"))
    work = Workdir(tmp_path)
    accounts = "".join(f'[[accounts]]\nid = "s{i}"\n' for i in range(8))
    task = work.task(f"""
concurrency = 4
{accounts}
[[steps]]
goto = "{site}/feed"
[[steps]]
scroll = 2
pause_ms = 30
[[steps]]
click = "#more"
[[steps]]
expect_title = "Feed (more)"
[[steps]]
goto = "{site}/slow?ms=100"
""")
    follow_db = tmp_path / "follow.db"
    EventWriter(work.log).close()  # there from the start, so tail has nothing to say about waiting for it
    projector = subprocess.Popen(
        [sys.executable, "-m", "cli", "project", "--follow", "--log", str(work.log), "--db", str(follow_db)],
        cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tail_out = tmp_path / "tail.out"  # a file, not a pipe: a pipe nobody reads would block tail at 64 KiB
    tail = subprocess.Popen([sys.executable, "-m", "cli", "tail", "-f", "-n", "all", "--json", "--log", str(work.log)],
                            cwd=REPO, env=cli_env(), stdout=tail_out.open("wb"), stderr=subprocess.PIPE)
    runs = 0
    try:
        end = time.monotonic() + soak_s
        while time.monotonic() < end:
            result = subprocess.run([sys.executable, "-m", "cli", *work.run_args(task, "--no-project")], cwd=REPO,
                                    env=cli_env(), capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            assert "warmup:" not in result.stderr, result.stderr
            runs += 1
        time.sleep(0.5)
        projector.send_signal(signal.SIGTERM)
        p_out, p_err = projector.communicate(timeout=60)
        deadline = time.monotonic() + 10  # tail -f catches up within its poll interval
        while tail_out.stat().st_size < work.log.stat().st_size and time.monotonic() < deadline:
            time.sleep(0.1)
        tail.send_signal(signal.SIGINT)
        _, t_err = tail.communicate(timeout=30)
        t_out = tail_out.read_bytes()
    finally:
        for proc in (projector, tail):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert projector.returncode == 0 and "Traceback" not in p_err and "rejected" not in p_err.lower(), p_err
    assert tail.returncode == 0 and t_err == b"", t_err
    raw = work.log.read_bytes()
    assert t_out == raw  # tail --json printed every line exactly once, byte for byte
    assert runs >= 2
    replayed = tmp_path / "replayed.db"
    assert warmup("project", "--log", work.log, "--db", follow_db).returncode == 0  # nothing left to apply
    assert warmup("replay", "--log", work.log, "--db", replayed).returncode == 0
    assert dump(follow_db) == dump(replayed)
    assert rows(follow_db, "SELECT count(*) AS n FROM runs WHERE status = 'COMPLETED'") == [{"n": runs}]


# -- filesystem edges (issue 9, defect 8) ------------------------------------------------------------


def test_a_log_deleted_while_a_run_appends_stops_the_run_and_says_so(site: str, tmp_path: Path) -> None:
    work = Workdir(tmp_path)
    task = work.task(f'[[accounts]]\nid = "a"\n[[accounts]]\nid = "b"\n[[steps]]\ngoto = "{site}/feed"\n'
                     '[[steps]]\nwait_ms = 3000\n')
    proc = start_run(work, task, "--no-project", "--concurrency", "1")
    try:
        while b'"account_started"' not in (work.log.read_bytes() if work.log.exists() else b""):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        work.log.unlink()  # while account a waits: its next event goes to a file nobody can read
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"warmup: cannot append to the event log {work.log}: it was deleted while warmup was writing to it "
        "(events written from now on would be lost)")
    assert not work.log.exists()  # and nothing wrote a new one behind our back


def test_a_run_under_umask_000_keeps_its_folders_private(site: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    task = tmp_path / "task.toml"
    task.write_text(f'storage_state = "states/${{account.id}}.json"\n[[accounts]]\nid = "a"\n'
                    f'[[steps]]\ngoto = "{site}/feed"\n[[steps]]\nscreenshot = "feed"\n')
    result = subprocess.run(
        [sys.executable, "-m", "cli", "run", str(task), "--log", str(data / "events.jsonl"), "--db",
         str(data / "db" / "warmup.db"), "--artifacts", str(data / "artifacts")],
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(0))
    assert result.returncode == 0, result.stderr
    folders = [data, data / "db", data / "events.jsonl.d", data / "events.jsonl.d" / "accounts", tmp_path / "states",
               data / "artifacts"]
    folders += [p for p in (data / "artifacts").rglob("*") if p.is_dir()]
    files = [data / "events.jsonl", data / "db" / "warmup.db", tmp_path / "states" / "a.json"]
    files += [p for p in (data / "artifacts").rglob("*.png")]
    assert len(folders) == 8 and len(files) == 4  # artifacts/<run>/<account>/feed.png
    assert {str(p): oct(p.stat().st_mode & 0o777) for p in folders} == {str(p): "0o700" for p in folders}
    assert {str(p): oct(p.stat().st_mode & 0o777) for p in files} == {str(p): "0o600" for p in files}
