"""Run and account locks (warmup.locks): held across processes, released by the kernel on SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from conftest import REPO, Workdir, cli_env, warmup

from warmup.errors import UsageError
from warmup.events.writer import EventWriter
from warmup.locks import AccountLock, LockFileRefused, RunLock, accounts_dir, lock_root, runs_dir
from warmup.recover import lock_is_held

HOLD = """
import sys, time
from pathlib import Path
from warmup.locks import AccountLock, RunLock
kind, log, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
if kind == "run":
    RunLock(log, name).acquire()
else:
    assert AccountLock(log, name, "holder-run").try_acquire() is None
print("held", flush=True)
time.sleep(60)
"""


def hold_in_child(kind: str, log: Path, name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, kind, str(log), name], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_run_lock_is_seen_held_until_its_process_is_killed_and_stays_behind(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    proc = hold_in_child("run", log, "r1")
    try:
        holder = lock_is_held(log, "r1")
        assert holder is not None and holder.pid == proc.pid and holder.run_id == "r1"
        assert holder.host == os.uname().nodename
    finally:
        kill(proc)
    assert lock_is_held(log, "r1") is None
    path = runs_dir(log) / "r1.lock"  # type: ignore[operator]
    assert path.exists() and path.stat().st_mode & 0o777 == 0o600  # the dead run's mark stays for recover
    assert [p.name for p in path.parent.iterdir()] == ["r1.lock"]  # no temporary file left


def test_a_run_lock_released_with_remove_leaves_no_file(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    lock = RunLock(log, "r2")
    lock.acquire()
    assert lock_is_held(log, "r2") is not None  # another open file description: a real conflict
    lock.release(remove=True)
    assert lock_is_held(log, "r2") is None and not (runs_dir(log) / "r2.lock").exists()  # type: ignore[operator]


def test_an_account_lock_names_its_holder_and_frees_on_sigkill(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    proc = hold_in_child("account", log, "alice")
    mine = AccountLock(log, "alice", "my-run")
    try:
        holder = mine.try_acquire()
        assert holder is not None and holder.run_id == "holder-run" and holder.pid == proc.pid
        assert "run holder-run on host" in holder.describe()
    finally:
        kill(proc)
    deadline = time.monotonic() + 5
    while mine.try_acquire() is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    other = AccountLock(log, "alice", "third-run")
    assert other.try_acquire() is not None  # we hold it now
    mine.release()
    assert other.try_acquire() is None
    other.release()
    assert (accounts_dir(log) / "alice.lock").exists()  # type: ignore[operator]  # kept: never unlinked


def test_two_paths_to_one_log_share_its_locks(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"")
    link = tmp_path / "link.jsonl"
    link.symlink_to(log)
    assert lock_root(link) == lock_root(log) == tmp_path / "events.jsonl.d"
    first = AccountLock(log, "alice", "run-1")
    assert first.try_acquire() is None
    try:
        holder = AccountLock(link, "alice", "run-2").try_acquire()
        assert holder is not None and holder.run_id == "run-1"
    finally:
        first.release()


def test_a_log_that_is_not_a_regular_file_gets_no_lock_folder(tmp_path: Path) -> None:
    assert lock_root(Path("/dev/full")) is None
    lock = RunLock(Path("/dev/full"), "r3")
    lock.acquire()
    lock.release(remove=True)
    assert not Path("/dev/full.d").exists()
    assert AccountLock(Path("/dev/null"), "a", "r").try_acquire() is None  # no lock: nothing to wait for
    assert lock_root(tmp_path / "missing.jsonl") == tmp_path / "missing.jsonl.d"


@pytest.mark.browser
def test_two_runs_never_drive_one_account_at_once(site: str, work: Workdir) -> None:
    # The first run holds "shared" until the test stops it (no clock decides who gets there first).
    long = work.task(f'[[accounts]]\nid = "shared"\n[[steps]]\ngoto = "{site}/feed"\n[[steps]]\nwait_ms = 300000\n',
                     "long.toml")
    short = work.task(f'[[accounts]]\nid = "shared"\n[[accounts]]\nid = "own"\n[[steps]]\ngoto = "{site}/feed"\n',
                      "short.toml")
    first = subprocess.Popen([sys.executable, "-m", "cli", *work.run_args(long, "--no-project")], cwd=REPO,
                             env=cli_env(WARMUP_GRACE_S="0"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    patient = None
    try:
        deadline = time.monotonic() + 30
        while not any(e["type"] == "account_started" for e in work.events()):
            assert time.monotonic() < deadline and first.poll() is None, "the first run never started its account"
            time.sleep(0.05)
        first_id = work.events()[0]["run_id"]
        impatient = subprocess.Popen(
            [sys.executable, "-m", "cli", *work.run_args(short, "--no-project", "--account-wait", "0.3")],
            cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, impatient_err = impatient.communicate(timeout=120)
        assert first.poll() is None, "the first run still holds the account"
        patient = subprocess.Popen(
            [sys.executable, "-m", "cli", *work.run_args(short, "--no-project", "--account-wait", "600")],
            cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert patient.stderr is not None
        said = []
        for line in patient.stderr:  # until it says it waits for the first run: then let the first one go
            said.append(line)
            if "waiting up to 600 s" in line:
                break
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
        _, rest = patient.communicate(timeout=120)
        patient_err = "".join(said) + rest
    finally:
        for proc in (first, patient):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert first.returncode == 130  # stopped by the test, its account INTERRUPTED
    assert impatient.returncode == 1 and patient.returncode == 0, patient_err
    assert f"waiting up to 600 s: it is being driven by run {first_id} on host" in patient_err
    events = work.events()
    finals = [e for e in events if e["type"] == "account_finished"]
    cancelled = [e for e in finals if e["status"] == "CANCELLED"]
    assert len(cancelled) == 1 and cancelled[0]["account_id"] == "shared" and cancelled[0]["attempt"] == 0
    assert f"account shared is being driven by run {first_id} on host" in cancelled[0]["error"]
    assert "(waited 0.3 s, --account-wait)" in cancelled[0]["error"]
    # "own" was not held up by the wait, and "shared" was driven by one run at a time
    assert sum(1 for e in finals if e["account_id"] == "own" and e["status"] == "COMPLETED") == 2
    spans = sorted(
        (s["ts"], next(f["ts"] for f in finals if f["run_id"] == s["run_id"] and f["account_id"] == "shared"))
        for s in events if s["type"] == "account_started" and s["account_id"] == "shared"
    )
    assert len(spans) == 2 and spans[0][1] <= spans[1][0]


# -- filesystem edges (issue 9, defect 8) -----------------------------------------------------------


def test_hard_links_to_one_log_share_its_locks(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"")
    other = tmp_path / "another-name.jsonl"
    os.link(log, other)
    assert lock_root(other) == lock_root(log)
    proc = hold_in_child("account", other, "alice")
    try:
        holder = AccountLock(log, "alice", "my-run").try_acquire()
        assert holder is not None and holder.pid == proc.pid  # the same lock, whichever name was used
    finally:
        kill(proc)
    run = RunLock(log, "r1")
    run.acquire()
    try:
        assert lock_is_held(other, "r1") is not None
    finally:
        run.release(remove=True)


def test_a_hard_link_added_later_does_not_move_the_locks(tmp_path: Path) -> None:
    log = tmp_path / "b.jsonl"
    log.write_bytes(b"")
    lock = AccountLock(log, "alice", "run-1")
    assert lock.try_acquire() is None
    try:
        os.link(log, tmp_path / "a.jsonl")  # sorts first, but b.jsonl.d already holds the locks
        assert lock_root(tmp_path / "a.jsonl") == tmp_path / "b.jsonl.d"
        assert AccountLock(tmp_path / "a.jsonl", "alice", "run-2").try_acquire() is not None
    finally:
        lock.release()


def test_a_log_with_a_name_in_another_folder_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"")
    (tmp_path / "elsewhere").mkdir()
    os.link(log, tmp_path / "elsewhere" / "events.jsonl")
    with pytest.raises(UsageError, match=r"has 2 names \(hard links\), some of them outside"):
        lock_root(log)
    result = warmup("recover", "--log", str(log))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"warmup: the event log {log} has 2 names (hard links), some of them outside")


def test_recover_through_a_hard_link_finds_the_dead_run_of_the_other_name(tmp_path: Path) -> None:
    log, other = tmp_path / "events.jsonl", tmp_path / "same-log.jsonl"
    EventWriter(log).close()
    os.link(log, other)
    proc = subprocess.Popen([sys.executable, "-c", DIE_MID_RUN, str(log)], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    kill(proc)
    result = warmup("recover", "--log", str(other))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("recovered dead run r-dead"), result.stdout
    assert [orjson.loads(x)["type"] for x in log.read_bytes().splitlines()][-1] == "run_finished"


DIE_MID_RUN = """
import sys, time
from pathlib import Path
from warmup.events.writer import EventWriter
from warmup.locks import RunLock
log = Path(sys.argv[1])
RunLock(log, "r-dead").acquire()
with EventWriter(log) as w:
    w.emit("run_started", run_id="r-dead", task_id="t", task_name="T", accounts=["a"], steps=1, concurrency=1,
           host="h", pid=1)
print("held", flush=True)
time.sleep(60)
"""


def test_a_symlink_planted_as_an_account_lock_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    directory = accounts_dir(log)
    assert directory is not None
    directory.mkdir(parents=True)
    (directory / "alice.lock").symlink_to(victim)
    with pytest.raises(LockFileRefused, match="is a symbolic link, not a lock file warmup made"):
        AccountLock(log, "alice", "run-1").try_acquire()
    assert victim.read_text() == "precious\n"


def test_a_symlink_planted_as_a_run_lock_temporary_is_never_followed(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    directory = runs_dir(log)
    assert directory is not None
    directory.mkdir(parents=True)
    (directory / f".r1.{os.getpid()}.tmp").symlink_to(victim)
    lock = RunLock(log, "r1")
    lock.acquire()
    lock.release(remove=True)
    assert victim.read_text() == "precious\n"


def test_a_fifo_or_a_hard_link_planted_as_an_account_lock_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"")
    directory = accounts_dir(log)
    assert directory is not None
    directory.mkdir(parents=True)
    os.mkfifo(directory / "alice.lock")  # would block a plain open() for ever
    with pytest.raises(LockFileRefused, match="is not a regular file"):
        AccountLock(log, "alice", "run-1").try_acquire()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.link(victim, directory / "bob.lock")
    with pytest.raises(LockFileRefused, match=r"has another name \(a hard link\)"):
        AccountLock(log, "bob", "run-1").try_acquire()
    assert victim.read_text() == "precious\n"


def test_lock_folders_are_private_under_umask_000(tmp_path: Path) -> None:
    log = tmp_path / "data" / "events.jsonl"
    old = os.umask(0)
    try:
        EventWriter(log).close()
        RunLock(log, "r1").acquire()
        assert AccountLock(log, "alice", "r1").try_acquire() is None
    finally:
        os.umask(old)
    for folder in (log.parent, tmp_path / "data" / "events.jsonl.d", runs_dir(log), accounts_dir(log)):
        assert folder is not None and folder.stat().st_mode & 0o777 == 0o700, folder
    for file in (log, runs_dir(log) / "r1.lock", accounts_dir(log) / "alice.lock"):  # type: ignore[operator]
        assert file.stat().st_mode & 0o777 == 0o600, file
