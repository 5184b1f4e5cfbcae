"""Filesystem edges (issue 9, defect 8): a FIFO for a log, a log deleted under a run, a write that fails
half-way, the umask, a read-only or full database folder, replay's leftovers.

Real files, real FIFOs, real processes, real (tiny or read-only) tmpfs mounts; no browser."""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, Workdir, cli_env, tmpfs, warmup

from warmup.events.envelope import decode
from warmup.events.follower import Follower
from warmup.events.logfile import NotALogFile, open_log
from warmup.events.writer import EventWriter, LogWriteError
from warmup.paths import make_private_dir
from warmup.runner.recorder import Recorder
from warmup.tasks import Scrubber

# -- a FIFO at --log -----------------------------------------------------------------------------


def fifo_commands(work: Workdir, fifo: Path) -> dict[str, list[str]]:
    fake_browser = work.root / "not-a-browser.sh"
    fake_browser.write_text("#!/bin/sh\nexit 3\n")
    fake_browser.chmod(0o755)
    task = work.task('[[accounts]]\nid = "a"\n[[steps]]\nwait_ms = 1\n')
    return {
        "tail": ["tail", "--log", str(fifo)],
        "tail -f": ["tail", "-f", "--log", str(fifo)],
        "project": ["project", "--log", str(fifo), "--db", str(work.db)],
        "project -f": ["project", "-f", "--log", str(fifo), "--db", str(work.db)],
        "replay": ["replay", "--log", str(fifo), "--db", str(work.db)],
        "report": ["report", "r1", "--log", str(fifo), "--db", str(work.db), "-o", str(work.root / "r.html")],
        "recover": ["recover", "--log", str(fifo)],
        "run": ["run", str(task), "--log", str(fifo), "--no-project", "--artifacts", str(work.artifacts),
                "--browser-path", str(fake_browser)],
    }


@pytest.mark.parametrize("command", ["tail", "tail -f", "project", "project -f", "replay", "report", "recover", "run"])
def test_every_command_refuses_a_fifo_for_a_log_at_once(work: Workdir, command: str) -> None:
    fifo = work.root / "events.jsonl"
    os.mkfifo(fifo)
    if command == "report":  # report reads the database first: give it one that knows run r1
        seed = work.root / "seed.jsonl"
        seed.write_bytes(b"".join(_run_lines("r1")))
        assert warmup("project", "--log", str(seed), "--db", str(work.db)).returncode == 0
    try:
        result = warmup(*fifo_commands(work, fifo)[command], timeout=30)  # it blocked for ever before
    except subprocess.TimeoutExpired:
        pytest.fail(f"`warmup {command}` blocked on the FIFO")
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"warmup: {fifo} is not a file but a FIFO (named pipe): --log wants the event log " \
                            "(a .jsonl file)\n"
    assert sorted(p.name for p in work.root.iterdir() if not p.name.startswith(("seed", "warmup.db"))) == [
        "events.jsonl", "not-a-browser.sh", "task.toml"]  # nothing left behind (no .d folder, no report)


def _run_lines(run_id: str) -> list[bytes]:
    sys.path.insert(0, str(REPO / "tests"))
    from projection_support import run_lines

    return run_lines(run_id, ["a"], {})


def test_a_fifo_that_appears_where_a_followed_log_was_awaited_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with Follower(path, 0) as follower:
        items = iter(follower)
        first = next(items)  # missing: it waits for the file
        assert first is None or getattr(first, "kind", None) == "missing"
        os.mkfifo(path)
        with pytest.raises(NotALogFile, match="is not a file but a FIFO"):
            for _ in range(10):
                next(items)


def test_open_log_refuses_what_is_not_a_regular_file_and_keeps_what_is(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, flags in ((fifo, os.O_RDONLY), (fifo, os.O_RDWR), (Path("/dev/null"), os.O_RDONLY)):
        with pytest.raises(NotALogFile):
            open_log(path, flags)
    fd = open_log(Path("/dev/full"), os.O_RDWR, devices_ok=True)  # the writer's way to fake a full disk
    os.close(fd)
    regular = tmp_path / "events.jsonl"
    regular.write_bytes(b"")
    fd = open_log(regular)
    try:
        assert os.get_blocking(fd)  # O_NONBLOCK cleared again
    finally:
        os.close(fd)
    with pytest.raises(NotALogFile, match="is not a file but a FIFO"):
        EventWriter(fifo)


# -- a log deleted, moved or replaced while a run appends ----------------------------------------


def _writer_with_one_event(log: Path) -> EventWriter:
    writer = EventWriter(log)
    writer.emit("run_started", run_id="r1", task_id="t", task_name="T", accounts=["a"], steps=1, concurrency=1,
                host="h", pid=1)
    return writer


def test_a_deleted_log_stops_the_writer_with_one_line(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    with _writer_with_one_event(log) as writer:
        log.unlink()
        with pytest.raises(LogWriteError) as caught:
            writer.emit("account_started", run_id="r1", account_id="a", attempt=1)
    assert caught.value.errno == errno.ENOENT
    assert caught.value.strerror == (
        f"cannot append to the event log {log}: it was deleted while warmup was writing to it "
        "(events written from now on would be lost)")


@pytest.mark.parametrize("how", ["moved", "replaced", "deleted and created again"])
def test_a_log_moved_or_replaced_stops_the_writer_and_the_old_file_gets_nothing_more(tmp_path: Path,
                                                                                       how: str) -> None:
    log, moved = tmp_path / "events.jsonl", tmp_path / "events.old"
    with _writer_with_one_event(log) as writer:
        before = log.read_bytes()
        if how == "moved":
            log.rename(moved)
        elif how == "replaced":
            os.link(log, moved)
            (tmp_path / "new").write_bytes(b"")
            (tmp_path / "new").rename(log)
        else:
            os.link(log, moved)
            log.unlink()
            log.write_bytes(b"")
        with pytest.raises(LogWriteError, match="the file was moved or replaced while warmup was writing to it"):
            writer.emit("account_started", run_id="r1", account_id="a", attempt=1)
    assert moved.read_bytes() == before  # nothing was written into the file nobody reads at that path
    assert not log.exists() or log.read_bytes() == b""


def test_the_recorder_goes_dead_once_when_the_log_is_deleted(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    dead: list[LogWriteError] = []
    with EventWriter(log) as writer:
        recorder = Recorder(writer, "r1", Scrubber([]))
        recorder.on_dead = dead.append
        assert recorder.emit("account_started", account_id="a", attempt=1) is not None
        log.unlink()
        assert recorder.emit("account_started", account_id="b", attempt=1) is None
        assert recorder.emit("account_started", account_id="c", attempt=1) is None
    assert len(dead) == 1 and "it was deleted while warmup was writing to it" in str(dead[0].strerror)


# -- a write that fails half-way leaves no partial line -----------------------------------------

WRITE_UNTIL_EFBIG = """
import resource, signal, sys
from warmup.events.writer import EventWriter, LogWriteError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as the runner does: EFBIG instead of death
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
with EventWriter(sys.argv[1]) as writer:
    n = 0
    try:
        while True:
            writer.emit("account_started", run_id="r1", account_id=f"account-{n:04d}", attempt=1, note="x" * 97)
            n += 1
    except LogWriteError as exc:
        print(n, exc.errno, exc.strerror)
"""


def test_a_write_cut_short_by_the_file_size_limit_leaves_no_partial_line(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    limit = 5000  # not a multiple of the line length: the last write is cut in its middle
    result = subprocess.run([sys.executable, "-c", WRITE_UNTIL_EFBIG, str(log), str(limit)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    written, code, message = result.stdout.split(" ", 2)
    assert int(code) == errno.EFBIG and message.startswith(f"cannot append to the event log {log}")
    raw = log.read_bytes()
    line_length = len(raw) // int(written)
    assert limit - line_length < len(raw) <= limit and limit % line_length  # a partial write did happen
    assert raw.endswith(b"\n") and raw.count(b"\n") == int(written)
    assert [decode(x)["account_id"] for x in raw.splitlines()] == [f"account-{n:04d}" for n in range(int(written))]


# -- folders are private whatever the umask ------------------------------------------------------


def test_make_private_dir_makes_every_missing_level_0700_under_umask_000(tmp_path: Path) -> None:
    existing = tmp_path / "mine"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    old = os.umask(0)
    try:
        make_private_dir(existing / "a" / "b" / "c")
        make_private_dir(existing / "a" / "b" / "c")  # again: nothing to do
    finally:
        os.umask(old)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o755  # an existing folder keeps the mode its owner chose
    for level in (existing / "a", existing / "a" / "b", existing / "a" / "b" / "c"):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700, level
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        make_private_dir(tmp_path / "file" / "sub")


def test_the_event_log_of_a_new_folder_is_private_under_umask_000(tmp_path: Path) -> None:
    log = tmp_path / "new" / "deeper" / "events.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", "import os, sys; os.umask(0); from warmup.events.writer import EventWriter; "
                               "EventWriter(sys.argv[1]).close()", str(log)],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (log.parent.parent, log.parent, log)}
    assert modes == {"new": 0o700, "deeper": 0o700, "events.jsonl": 0o600}


# -- the database's folder: read-only, full; replay's leftovers -----------------------------------


def remount_read_only(where: Path) -> None:
    done = subprocess.run(["mount", "-o", "remount,ro", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot remount read-only here: {done.stderr.decode().strip()}")


def one_line(result: subprocess.CompletedProcess[str], code: int, *parts: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("warmup: "), result.stderr
    for part in parts:
        assert part in result.stderr, result.stderr


@pytest.fixture
def small_log(tmp_path: Path) -> Path:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(_run_lines("r1")))
    return log


def test_a_read_only_database_folder_is_said_so_by_every_command(tmp_path: Path, small_log: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m") as ro:
        live = ro / "live.db"
        assert warmup("project", "--log", small_log, "--db", live).returncode == 0  # a WAL database
        remount_read_only(ro)
        before = sorted(p.name for p in ro.iterdir())
        folder = f"its folder {ro} is on a read-only file system"
        one_line(warmup("project", "--log", small_log, "--db", ro / "new.db"), 2,
                 f"cannot create the database {ro / 'new.db'}: {folder}", "pass --db with a path in a writable")
        one_line(warmup("replay", "--log", small_log, "--db", ro / "new.db"), 2,
                 f"cannot replay into {ro / 'new.db'}: {folder}")
        wal = "(a WAL database: SQLite must create live.db-wal and -shm beside it, even to read it)"
        for command in (["project"], ["replay"]):
            one_line(warmup(*command, "--log", small_log, "--db", live), 2, f"cannot use the database {live}: {folder}",
                     wal)
        for command in (["status"], ["runs"], ["show", "r1"],
                        ["report", "r1", "--log", str(small_log), "-o", str(tmp_path / "r.html")]):
            one_line(warmup(*command, "--db", live), 2, f"cannot use the database {live}: {folder}", wal)
        assert sorted(p.name for p in ro.iterdir()) == before


def test_a_full_disk_under_the_database_is_said_so_and_leaves_nothing_behind(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(b"".join(_run_lines(f"r{i}")) for i in range(300)))
    with tmpfs(tmp_path / "tiny", "64k") as tiny:
        for command in ("project", "replay"):
            db = tiny / f"{command}.db"
            one_line(warmup(command, "--log", log, "--db", db), 1, f"the disk holding the database {db}",
                     "is full (SQLITE_FULL)", "free some space and run the command again")
            assert list(tiny.iterdir()) == []  # neither the new database nor replay's build is left


def test_a_killed_replay_leaves_its_build_which_the_next_replay_removes(tmp_path: Path, small_log: Path) -> None:
    db = tmp_path / "warmup.db"
    assert warmup("project", "--log", small_log, "--db", db).returncode == 0
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # replay builds its copy, then waits here to swap it in
    proc = subprocess.Popen([sys.executable, "-m", "cli", "replay", "--log", str(small_log), "--db", str(db)],
                            cwd=REPO, env=cli_env(WARMUP_LOCK_WAIT_S="600"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    build = tmp_path / f"warmup.db.replay-{proc.pid}"
    try:
        while not _is_complete_build(build):
            assert proc.poll() is None, "replay ended before it could be killed"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
        holder.execute("ROLLBACK")
        holder.close()
    assert build.exists()  # a killed replay leaves its build behind
    live_pid = os.getpid()  # this test, alive: a file with its pid is another replay at work
    busy = tmp_path / f"warmup.db.replay-{live_pid}"
    busy.write_bytes(b"in the making")
    not_ours = tmp_path / "warmup.db.replay-notes"
    not_ours.write_bytes(b"")
    result = warmup("replay", "--log", small_log, "--db", db)
    assert result.returncode == 0, result.stderr
    assert not build.exists() and busy.exists() and not_ours.exists()  # the killed replay's own build went
    names = {p.name for p in tmp_path.glob("warmup.db*")} - {"warmup.db-wal", "warmup.db-shm"}
    assert names == {"warmup.db", busy.name, not_ours.name}
    # a dead pid here, but its flock is held: a replay in another pid namespace (a container) at work
    other_namespace = tmp_path / f"warmup.db.replay-{proc.pid}"
    other_namespace.write_bytes(b"in the making")
    held = os.open(other_namespace, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert warmup("replay", "--log", small_log, "--db", db).returncode == 0
        assert other_namespace.exists()
    finally:
        os.close(held)
    assert warmup("replay", "--log", small_log, "--db", db).returncode == 0
    assert not other_namespace.exists() and busy.exists()  # once its flock is free, it is stale


def _is_complete_build(path: Path) -> bool:
    """Whether replay's build holds its indexes (it is done, and waits to swap)."""
    if not path.exists():
        return False
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                                ).fetchone()[0] > 0
        finally:
            conn.close()
    except sqlite3.Error:
        return False
