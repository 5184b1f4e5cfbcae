"""``warmup log copy SRC DST``: real files, the CLI in a subprocess as a user runs it.

The copy's promise: DST ends up holding every line of SRC, as the same bytes, in order, so that
projecting it gives the same tables; a second copy adds nothing; a copy cut short is completed by
running it again.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, cli_env, warmup
from nats_servers import NatsCluster, NatsServer, stream_name
from nats_servers import nats_cluster as nats_cluster  # noqa: F401 (fixtures)
from nats_servers import nats_server as nats_server  # noqa: F401
from projection_support import run_lines, synthetic_log

from warmup.log import FileLog
from warmup.log.copy import copy_log, event_id

BAD_JSON = b'{"v": 1, "id": "cut-off", "type": "step_fin'
NO_ID = b'{"v": 1, "type": "step_finished", "note": "an event without an id"}'


def dump(db: Path, *, positions: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of ``db``, each table ordered by its primary key.

    Left out: the log's name in the checkpoints; with ``positions=False`` also what depends on where
    a line is in its log (the checkpoints' position and fingerprint, a rejected line's position),
    which differs between a file and a stream holding the same lines.
    """
    leave_out = {"warmup_checkpoints": {"log"}}
    if not positions:
        leave_out = {"warmup_checkpoints": {"log", "position", "fingerprint"}, "rejected_events": {"position"}}
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table in tables:
            info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
            pk = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]] or ["rowid"]
            columns = [r[1] for r in info if r[1] not in leave_out.get(table, ())]
            select = ", ".join(f'"{c}"' for c in columns)
            order = ", ".join(f'"{c}"' if c != "rowid" else c for c in pk)
            out[table] = conn.execute(f'SELECT {select} FROM "{table}" ORDER BY {order}').fetchall()
        return out
    finally:
        conn.close()


def project(log: str | Path, db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Project ``log`` into a new ``db``, core tables and ``steps``, as a user does; its dump."""
    result = warmup("project", "--log", str(log), "--db", str(db), "--projection", "steps", "-q")
    assert result.returncode == 0, result.stderr
    return dump(db)


def copy(src: str | Path, dst: str | Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return warmup("log", "copy", str(src), str(dst), *extra)


@pytest.fixture(scope="module")
def real_log(site: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The log of a real ``warmup run``: two accounts, one completing, one failing at its last step."""
    root = tmp_path_factory.mktemp("real-run")
    task = root / "task.toml"
    task.write_text(f"""
id = "copy-me"
concurrency = 2
[[accounts]]
id = "ok"
vars = {{ sel = "#feed" }}
[[accounts]]
id = "ko"
vars = {{ sel = "#missing" }}

[[steps]]
goto = "{site}/feed"
[[steps]]
click = "#more"
[[steps]]
wait_for = "${{account.sel}}"
timeout_ms = 500
""")
    log = root / "events.jsonl"
    result = warmup("run", str(task), "--log", str(log), "--no-project", "--artifacts", str(root / "artifacts"))
    assert result.returncode == 1, result.stderr  # (one account failed)
    return log


@pytest.mark.browser
def test_a_real_runs_log_copied_projects_to_the_same_tables(real_log: Path, tmp_path: Path) -> None:
    dst = tmp_path / "copy" / "events.jsonl"
    n = len(real_log.read_bytes().splitlines())
    result = copy(real_log, dst)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"copied {n} events from {real_log} to {dst} (0 already there)\n"
    assert dst.read_bytes() == real_log.read_bytes()

    original, copied = project(real_log, tmp_path / "a.db"), project(dst, tmp_path / "b.db")
    assert copied == original  # checkpoints included: the same bytes give the same positions
    assert len(original["run_accounts"]) == 2 and original["steps"] and original["runs"]
    assert {row[0] for row in original["accounts"]} == {"ok", "ko"}

    again = copy(real_log, dst)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"copied 0 events from {real_log} to {dst} ({n} already there)\n"
    assert dst.read_bytes() == real_log.read_bytes()


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line.rstrip(b"\n") + b"\n" for line in lines))
    return path


def test_lines_that_are_not_events_are_carried_over_once(tmp_path: Path) -> None:
    run = run_lines("run-a", ["a1", "a2"], {"a2": "FAILED"})
    # A bad line twice (a log may hold the same torn bytes twice): both copied, neither again later.
    lines = [*run[:3], BAD_JSON, *run[3:6], NO_ID, BAD_JSON, *run[6:]]
    src = write_lines(tmp_path / "src.jsonl", lines)
    dst = tmp_path / "dst.jsonl"
    result = copy(src, dst)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"copied {len(run)} events from {src} to {dst} "
                             "(0 already there, 3 lines that are not events copied as they are)\n")
    assert dst.read_bytes() == src.read_bytes()
    original, copied = project(src, tmp_path / "a.db"), project(dst, tmp_path / "b.db")
    assert copied == original
    assert len(original["rejected_events"]) == 3

    again = copy(src, dst)
    assert again.returncode == 0, again.stderr
    assert again.stdout == (f"copied 0 events from {src} to {dst} "
                            f"({len(run)} already there, 3 lines that are not events already there)\n")
    assert dst.read_bytes() == src.read_bytes()


def test_a_partial_destination_gets_only_the_rest(tmp_path: Path) -> None:
    src = synthetic_log(tmp_path, 2_000, seed=3)
    lines = src.read_bytes().splitlines(keepends=True)
    dst = tmp_path / "dst.jsonl"
    dst.write_bytes(b"".join(lines[:1_000]))
    result = copy(src, dst)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"copied 1,000 events from {src} to {dst} (1,000 already there)\n"
    assert dst.read_bytes() == src.read_bytes()
    assert project(dst, tmp_path / "b.db") == project(src, tmp_path / "a.db")


def test_a_destination_with_a_torn_last_line_is_repaired_and_completed(tmp_path: Path) -> None:
    """A copy killed mid-line (SIGKILL, power loss) leaves a torn tail: the next copy cuts it (the
    log's one repair, said on stderr) and copies that event again, whole."""
    src = synthetic_log(tmp_path, 1_000, seed=4)
    lines = src.read_bytes().splitlines(keepends=True)
    dst = tmp_path / "dst.jsonl"
    dst.write_bytes(b"".join(lines[:500]) + lines[500][:40])
    result = copy(src, dst)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"copied 500 events from {src} to {dst} (500 already there)\n"
    assert "cut a torn last line (40 bytes" in result.stderr
    assert dst.read_bytes() == src.read_bytes()


def test_events_already_in_the_destination_are_skipped_wherever_they_are(tmp_path: Path) -> None:
    """DST has another run first, then some of SRC's events out of order: only the missing ones go."""
    run = run_lines("run-a", ["a1"], {})
    other = run_lines("run-b", ["b1"], {})
    src = write_lines(tmp_path / "src.jsonl", run)
    dst = write_lines(tmp_path / "dst.jsonl", [*other, run[2], run[0]])
    result = copy(src, dst)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"copied {len(run) - 2} events from {src} to {dst} (2 already there)\n"
    ids = [event_id(line) for line in dst.read_bytes().splitlines()]
    assert ids == [event_id(line) for line in [*other, run[2], run[0], run[1], *run[3:]]]


def test_a_missing_source_is_one_line_and_exit_2(tmp_path: Path) -> None:
    dst = tmp_path / "dst.jsonl"
    result = copy(tmp_path / "nope.jsonl", dst)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (f"warmup: no event log at {tmp_path / 'nope.jsonl'}: start one with `warmup run "
                             "TASK.toml`, or point at yours with --log PATH (or WARMUP_LOG)\n")
    assert not dst.exists()


def test_the_same_log_as_source_and_destination_is_refused(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "src.jsonl", run_lines("run-a", ["a1"], {}))
    before = src.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(src)
    for dst in (src, tmp_path / "." / "src.jsonl", tmp_path / "link.jsonl"):
        result = copy(src, dst)
        assert result.returncode == 2, result
        assert result.stderr == f"warmup: SRC and DST are the same log ({src}): give another DST\n"
    assert src.read_bytes() == before


def test_a_destination_that_is_not_a_log_is_refused(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "src.jsonl", run_lines("run-a", ["a1"], {}))
    db = tmp_path / "warmup.db"
    project(src, db)  # (a likely mistake: the database as DST)
    task = tmp_path / "task.toml"
    task.write_text('[[accounts]]\nid = "a"\n[[steps]]\ngoto = "http://127.0.0.1/"\n')
    for dst in (db, task):
        before = dst.read_bytes()
        result = copy(src, dst)
        assert result.returncode == 2, result
        assert result.stderr.startswith(f"warmup: {dst} is not an event log (none of its ")
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert dst.read_bytes() == before
    folder = tmp_path / "folder"
    folder.mkdir()
    result = copy(src, folder)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result


def test_a_copy_stopped_between_lines_keeps_what_it_copied_and_a_rerun_completes(tmp_path: Path) -> None:
    """In-process, deterministic: ``stop`` says yes once DST holds 700 lines."""
    src = synthetic_log(tmp_path, 1_500, seed=5)
    dst = tmp_path / "dst.jsonl"
    cut = len(b"".join(src.read_bytes().splitlines(keepends=True)[:700]))

    def stop() -> bool:
        return dst.exists() and dst.stat().st_size >= cut

    first = copy_log(FileLog(src), FileLog(dst), stop=stop, max_bytes=64 << 10)
    assert first.interrupted and first.copied == 700 and first.already == 0
    assert dst.read_bytes() == b"".join(src.read_bytes().splitlines(keepends=True)[:700])
    second = copy_log(FileLog(src), FileLog(dst), max_bytes=64 << 10)
    assert not second.interrupted and (second.copied, second.already) == (800, 700)
    assert dst.read_bytes() == src.read_bytes()


def interrupt_a_copy(src: Path, dst: str, n_lines: int, lines_in_dst: Callable[[], int]) -> int:
    """Start ``warmup log copy SRC DST``, freeze it (SIGSTOP) once DST holds a line, Ctrl-C it, let it
    go on: it must stop with exit 130 and say how many it copied (returned)."""
    proc = subprocess.Popen([sys.executable, "-m", "cli", "log", "copy", str(src), dst], cwd=REPO,
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while lines_in_dst() == 0:
            assert proc.poll() is None and time.monotonic() < deadline, proc.poll()
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGSTOP)
        assert lines_in_dst() < n_lines, "the copy finished before it could be interrupted"
        os.kill(proc.pid, signal.SIGINT)
        os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    copied = lines_in_dst()
    events = "event" if copied == 1 else "events"
    assert out == (f"interrupted: copied {copied:,} {events} from {src} to {dst} (0 already there); "
                   "run the same command again to copy the rest\n")
    assert err.endswith("warmup: interrupted\n")
    return copied


def test_ctrl_c_stops_the_copy_cleanly_with_exit_130(tmp_path: Path) -> None:
    src = synthetic_log(tmp_path, 10_000, seed=9)
    dst = tmp_path / "dst.jsonl"
    copied = interrupt_a_copy(src, str(dst), 10_000,
                              lambda: dst.read_bytes().count(b"\n") if dst.exists() else 0)
    assert src.read_bytes().startswith(dst.read_bytes())
    rest = copy(src, dst)
    assert rest.returncode == 0, rest.stderr
    assert rest.stdout == f"copied {10_000 - copied:,} events from {src} to {dst} ({copied:,} already there)\n"
    assert dst.read_bytes() == src.read_bytes()


# -- a NATS JetStream stream as SRC or DST (tests/nats_servers.py starts the servers; skipped without
# nats-server) -------------------------------------------------------------------------------------


def project_in_process(spec: str, db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The tables of ``spec`` projected through the log interface (the CLI's --log takes paths only
    on this branch), without what depends on positions."""
    from warmup.log import open_log_backend
    from warmup.projector.runner import ProjectionRunner
    from warmup.projector.specs import load_projections

    with ProjectionRunner(open_log_backend(spec), db, load_projections(("steps",), ())) as runner:
        runner.catch_up()
    return dump(db, positions=False)


def test_file_to_stream_to_file_keeps_every_line_and_the_tables(nats_server: NatsServer, tmp_path: Path) -> None:
    run = run_lines("run-a", ["a1", "a2", "a3"], {"a2": "FAILED"})
    src = write_lines(tmp_path / "src.jsonl", [*run[:4], BAD_JSON, *run[4:9], NO_ID, BAD_JSON, *run[9:]])
    url = f"{nats_server.url}/{stream_name('copy')}"
    there = copy(src, url)
    assert there.returncode == 0, there.stderr
    assert there.stdout == (f"copied {len(run)} events from {src} to {url} "
                            "(0 already there, 3 lines that are not events copied as they are)\n")
    again = copy(src, url)
    assert again.returncode == 0, again.stderr
    assert again.stdout == (f"copied 0 events from {src} to {url} "
                            f"({len(run)} already there, 3 lines that are not events already there)\n")

    back = tmp_path / "back.jsonl"
    result = copy(url, back)
    assert result.returncode == 0, result.stderr
    assert back.read_bytes() == src.read_bytes()
    from_file = project(src, tmp_path / "a.db")
    assert project(back, tmp_path / "b.db") == from_file
    stream_tables = project_in_process(url, tmp_path / "s.db")
    assert stream_tables == dump(tmp_path / "a.db", positions=False)
    assert len(stream_tables["rejected_events"]) == 3 and stream_tables["steps"]


def test_stream_to_stream_copies_only_what_the_destination_lacks(nats_server: NatsServer, tmp_path: Path) -> None:
    src = synthetic_log(tmp_path, 1_200, seed=11)
    lines = src.read_bytes().splitlines(keepends=True)
    first_half = write_lines(tmp_path / "half.jsonl", lines[:500])
    a, b = f"{nats_server.url}/{stream_name('a')}", f"{nats_server.url}/{stream_name('b')}"
    assert copy(src, a).returncode == 0
    assert copy(first_half, b).returncode == 0
    result = copy(a, b)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"copied 700 events from {a} to {b} (500 already there)\n"
    back = tmp_path / "back.jsonl"
    assert copy(b, back).returncode == 0
    assert back.read_bytes() == src.read_bytes()


def test_ctrl_c_stops_a_copy_into_a_stream_and_a_rerun_completes(nats_server: NatsServer, tmp_path: Path) -> None:
    from warmup.log import LogMissing, open_log_backend

    # enough events that the copy is still going when the poll below (a new connection each time) sees
    # its first line: 5,000 were all copied before that, now and then, since the appender got faster
    n = 30_000
    src = synthetic_log(tmp_path, n, seed=13)
    url = f"{nats_server.url}/{stream_name('int')}"

    def in_stream() -> int:
        log = open_log_backend(url)
        try:
            reader = log.reader()
        except LogMissing:
            return 0
        with reader:
            count, position = 0, log.START
            while batch := reader.read(position, 4 << 20):
                if not batch.lines:
                    return count
                count, position = count + len(batch.lines), batch.end
        return count

    copied = interrupt_a_copy(src, url, n, in_stream)
    rest = copy(src, url)
    assert rest.returncode == 0, rest.stderr
    assert rest.stdout == f"copied {n - copied:,} events from {src} to {url} ({copied:,} already there)\n"
    back = tmp_path / "back.jsonl"
    assert copy(url, back).returncode == 0 and back.read_bytes() == src.read_bytes()


def test_a_missing_stream_as_source_is_exit_2(nats_server: NatsServer, tmp_path: Path) -> None:
    url = f"{nats_server.url}/{stream_name('none')}"
    result = copy(url, tmp_path / "dst.jsonl")
    assert result.returncode == 2
    assert result.stderr.startswith(f"warmup: no event log at {url}") and result.stderr.count("\n") == 1
    assert not (tmp_path / "dst.jsonl").exists()


def test_a_stream_as_both_source_and_destination_is_refused(nats_server: NatsServer, tmp_path: Path) -> None:
    src = write_lines(tmp_path / "src.jsonl", run_lines("run-a", ["a1"], {}))
    url = f"{nats_server.url}/{stream_name('same')}"
    assert copy(src, url).returncode == 0
    for dst in (url, url + "/"):
        result = copy(url, dst)
        assert result.returncode == 2, result
        assert result.stderr.startswith("warmup: SRC and DST are the same log (") and result.stderr.count("\n") == 1
    back = tmp_path / "back.jsonl"
    assert copy(url, back).returncode == 0 and back.read_bytes() == src.read_bytes()  # (nothing added)


@pytest.mark.browser
def test_a_real_runs_log_goes_through_a_stream_and_back(real_log: Path, nats_server: NatsServer,
                                                        tmp_path: Path) -> None:
    url = f"{nats_server.url}/{stream_name('real')}"
    assert copy(real_log, url).returncode == 0
    back = tmp_path / "back.jsonl"
    assert copy(url, back).returncode == 0
    assert back.read_bytes() == real_log.read_bytes()
    assert project(back, tmp_path / "b.db") == project(real_log, tmp_path / "a.db")
    assert project_in_process(url, tmp_path / "s.db") == dump(tmp_path / "a.db", positions=False)


def test_replicas_3_on_a_cluster(nats_cluster: NatsCluster, tmp_path: Path) -> None:
    src = write_lines(tmp_path / "src.jsonl", run_lines("run-a", ["a1", "a2"], {}))
    name = stream_name("r3")
    url = f"{nats_cluster.url}/{name}"
    result = copy(src, url, "--replicas", "3")
    assert result.returncode == 0, result.stderr
    assert "replicas 3" in result.stderr  # (the backend says it created the stream, and how)
    back = tmp_path / "back.jsonl"
    assert copy(url, back).returncode == 0
    assert back.read_bytes() == src.read_bytes()
