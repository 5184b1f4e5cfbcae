"""``warmup tail`` as a user runs it: a real subprocess on real files, changed by other processes.

Logs are written with the project's own ``EventWriter``/``encode(make_event(...))``, and by hand
where a test needs bytes the writer would never produce (halves of a line, invalid lines, hostile
text, unusual but valid JSON).
"""

from __future__ import annotations

import os
import pty
import queue
import re
import select
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmup.events import EventWriter, encode, make_event
from warmup.tail.backward import complete_end, lines_backward

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
TAIL = [sys.executable, "-m", "cli", "tail"]


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "WARMUP_LOG", "WARMUP_FOLLOW_POLL")}
    e.update(extra)
    return e


def tail(*args: str | Path, **extra_env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*TAIL, *map(str, args)], cwd=REPO, env=env(**extra_env), capture_output=True, timeout=30
    )


def step(run: str, account: str, index: int, ok: bool = True, error: str | None = None, **extra: object) -> bytes:
    return encode(
        make_event(
            "step_finished", run_id=run, account_id=account, index=index, action="click", ok=ok,
            duration_ms=12.5, error=error, **extra,
        )
    )


class LiveTail:
    """A running ``warmup tail -f``; its stdout and stderr lines are collected by threads."""

    def __init__(self, *args: str | Path, **extra_env: str) -> None:
        self.proc = subprocess.Popen(
            [*TAIL, "-f", *map(str, args)], cwd=REPO, env=env(**extra_env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.out: queue.Queue[bytes] = queue.Queue()
        self.err: queue.Queue[bytes] = queue.Queue()
        self.err_all: list[bytes] = []
        for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, q), daemon=True).start()

    def _pump(self, stream: object, q: queue.Queue[bytes]) -> None:
        for line in iter(stream.readline, b""):  # type: ignore[attr-defined]
            if q is self.err:
                self.err_all.append(line)
            q.put(line)

    def line(self, timeout: float = 60.0) -> bytes:  # a bound on a hang: the line decides
        return self.out.get(timeout=timeout)

    def notice(self, timeout: float = 60.0) -> str:
        return self.err.get(timeout=timeout).decode()

    def quiet_for(self, seconds: float) -> bool:
        try:
            got = self.out.get(timeout=seconds)
        except queue.Empty:
            return True
        self.out.put(got)
        return False

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT, as the terminal sends it. Returns the exit code."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def live() -> object:
    started: list[LiveTail] = []

    def start(*args: str | Path, **extra_env: str) -> LiveTail:
        t = LiveTail(*args, **extra_env)
        started.append(t)
        return t

    yield start
    for t in started:
        t.kill()


# --- following ----------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, time
    from warmup.events import EventWriter
    with EventWriter(sys.argv[1]) as w:
        for i in range(20):
            w.emit("step_finished", run_id="r1", account_id="alice", index=i, action="goto",
                   ok=True, duration_ms=1.0, error=None)
            time.sleep(0.01)
    """
)


def test_follow_prints_another_process_appends_and_holds_a_half_line(tmp_path: Path, live: object) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(step("r0", "old", 0) + step("r0", "old", 1))
    t = live("--log", log, "--json", "-n", "1")
    assert t.line() == log.read_bytes().splitlines(keepends=True)[-1]

    subprocess.run([sys.executable, "-c", WRITER, str(log)], cwd=REPO, check=True, timeout=30)
    got = [orjson.loads(t.line()) for _ in range(20)]
    assert [e["index"] for e in got] == list(range(20))

    whole = step("r1", "bob", 99, error="written in two halves")
    with open(log, "ab") as f:
        f.write(whole[:40])
    assert t.quiet_for(0.5), "a partial line was printed"
    with open(log, "ab") as f:
        f.write(whole[40:])
    assert t.line() == whole
    assert t.quiet_for(0.3), "the completed line was printed twice"

    assert t.interrupt() == 0
    assert t.err_all == []


@pytest.mark.parametrize("poll", ["", "0.05"], ids=["inotify", "polling"])
def test_log_created_later_then_truncated_then_replaced(tmp_path: Path, live: object, poll: str) -> None:
    log = tmp_path / "not-yet" / "events.jsonl"
    t = live("--log", log, WARMUP_FOLLOW_POLL=poll)
    assert "does not exist yet; waiting for it" in t.notice()

    with EventWriter(log) as w:
        w.emit("account_started", run_id="r1", account_id="alice", attempt=1)
    assert "appeared" in t.notice()
    assert b" r1 alice account_started attempt=1" in t.line()

    os.truncate(log, 0)
    with EventWriter(log) as w:
        w.emit("account_finished", run_id="r1", account_id="alice", status="COMPLETED", error=None, attempt=1)
    assert "was truncated; reading it again from its start" in t.notice()
    assert b" r1 alice account_finished COMPLETED attempt=1" in t.line()

    with EventWriter(log) as w:  # the old file's last line, then the replacement by rename
        w.emit("run_finished", run_id="r1", status="COMPLETED")
    fresh = tmp_path / "not-yet" / "events.jsonl.new"
    with EventWriter(fresh) as w:
        w.emit("run_finished", run_id="r2", status="FAILED", reason="replaced log")
    os.rename(fresh, log)
    assert b" r1 - run_finished COMPLETED" in t.line()
    assert "was replaced; reading the new file from its start" in t.notice()
    assert b" r2 - run_finished FAILED reason=replaced log" in t.line()
    assert t.quiet_for(0.3)
    assert t.interrupt() == 0


# --- -n and filters --------------------------------------------------------------------------------

READ_COUNTER = textwrap.dedent(
    """
    import atexit, sys
    def report():
        rchar = [l for l in open("/proc/self/io") if l.startswith("rchar:")][0].split()[1]
        sys.stderr.write(f"RCHAR {rchar}\\n")
    atexit.register(report)
    sys.argv = ["warmup", *sys.argv[1:]]
    from cli import main
    main()
    """
)


def test_n_reads_backwards_so_a_1gb_log_costs_what_a_small_one_does(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    with open(log, "wb") as f:  # 1 GiB of hole (one giant line of NULs), then 30 events
        f.truncate(1 << 30)
        f.seek(0, os.SEEK_END)
        f.write(b"\n")
        events = [step("r1", f"acct{i}", i) for i in range(30)]
        f.write(b"".join(events) + b'{"torn')
    proc = subprocess.run(
        [sys.executable, "-c", READ_COUNTER, "tail", "--log", str(log), "-n", "5", "--json"],
        cwd=REPO, env=env(), capture_output=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"".join(events[-5:])
    bytes_read = int(re.search(rb"RCHAR (\d+)", proc.stderr).group(1))  # type: ignore[union-attr]
    assert bytes_read < 64 << 20, f"tail -n 5 read {bytes_read} bytes of a 1 GiB log"

    filtered = tail("--log", log, "-n", "1", "--account", "acct25", "--json")
    assert filtered.stdout == events[25]


def ts(minute: int) -> str:
    return f"2026-11-29T07:{minute:02d}:00.000000Z"


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, list[bytes]]:
    """A log of two interleaved runs of two accounts each, one event a minute, plus junk lines."""
    lines: list[bytes] = []
    minute = 0
    for run in ("r1", "r2"):
        lines.append(encode(make_event("run_started", ts=ts(minute), run_id=run, task_id="t", task_name="T",
                                       accounts=["alice", "bob"], steps=2, concurrency=2, host="h", pid=1)))
        minute += 1
    for account in ("alice", "bob"):
        for run in ("r1", "r2"):
            lines.append(encode(make_event("account_started", ts=ts(minute), run_id=run, account_id=account,
                                           attempt=1)))
            minute += 1
            lines.append(encode(make_event("step_finished", ts=ts(minute), run_id=run, account_id=account,
                                           index=0, action="goto", ok=run == "r1", duration_ms=5,
                                           error=None if run == "r1" else "boom")))
            minute += 1
            lines.append(encode(make_event("account_finished", ts=ts(minute), run_id=run, account_id=account,
                                           status="COMPLETED" if run == "r1" else "FAILED",
                                           error=None, attempt=1)))
            minute += 1
    for run in ("r1", "r2"):
        lines.append(encode(make_event("run_finished", ts=ts(minute), run_id=run, status="COMPLETED")))
        minute += 1
    junk = [b"not json at all\n", b'{"run_id":"r1","type":"from_the_future","ts":"2026-11-29T08:00:00Z"}\n']
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(lines[:5] + junk[:1] + lines[5:] + junk[1:]))
    return log, lines + junk


def expected(lines: list[bytes], **want: object) -> bytes:
    out = []
    for raw in lines:
        try:
            e = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if all(
            e.get(k) in v if isinstance(v, set) else (e.get("ts", "") >= v if k == "ts" else e.get(k) == v)
            for k, v in want.items()
        ):
            out.append(raw)
    return b"".join(out)


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (["--run", "r1"], {"run_id": "r1"}),
        (["--account", "bob"], {"account_id": "bob"}),
        (["--type", "account_finished", "--type", "run_started"], {"type": {"account_finished", "run_started"}}),
        (["--since", "2026-11-29T07:15:00Z"], {"ts": ts(15)}),
        (["--since", "2026-11-29 08:12+01:00", "--run", "r2", "--account", "bob"],
         {"ts": ts(12), "run_id": "r2", "account_id": "bob"}),
    ],
    ids=["run", "account", "types", "since", "combined"],
)
def test_each_filter_in_log_order(two_runs: tuple[Path, list[bytes]], args: list[str], want: dict) -> None:
    log, lines = two_runs
    in_log_order = sorted(lines, key=lambda raw: log.read_bytes().index(raw))
    every = tail("--log", log, "-n", "all", "--json", *args)
    assert every.returncode == 0 and every.stderr == b""
    assert every.stdout == expected(in_log_order, **want) != b""
    last2 = tail("--log", log, "-n", "2", "--json", *args)
    assert last2.stdout == b"".join(every.stdout.splitlines(keepends=True)[-2:])


def test_readable_run_history_shows_the_fields_that_matter(two_runs: tuple[Path, list[bytes]]) -> None:
    log, _ = two_runs
    out = tail("--log", log, "--run", "r2", "-n", "all").stdout.decode().splitlines()
    assert out[0] == "2026-11-29 07:01:00.000 r2 - run_started task=t accounts=2 concurrency=2"
    assert "2026-11-29 07:06:00.000 r2 alice step_finished step 1 goto FAILED 5ms error: boom" in out
    assert "2026-11-29 07:07:00.000 r2 alice account_finished FAILED attempt=1" in out
    assert len(out) == 8 and all(" r2 " in line for line in out)
    unfiltered = tail("--log", log, "-n", "all").stdout.decode().splitlines()
    assert "!! invalid line at byte" in unfiltered[5] and "not json at all" in unfiltered[5]
    assert "from_the_future !! invalid line at byte" in unfiltered[-1]


def test_json_is_byte_for_byte(tmp_path: Path) -> None:
    odd = [
        b'{ "v" : 1, "id":"a", "type":"run_finished", "ts":"2026-11-29T07:00:00Z", "run_id":"r\\u0031",'
        b' "status":"COMPLETED" }\n',
        "{\"v\":1,\"id\":\"b\",\"type\":\"run_finished\",\"ts\":\"2026-11-29T07:00:01Z\",\"run_id\":\"r1\","
        "\"status\":\"FAILED\",\"reason\":\"caf\u00e9 \u2603 \\u001b[31m\"}\n".encode(),
        b"[1, 2, 3]\n",
        b"\xff\xfe not utf-8\n",
        b"\n",
    ]
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(odd) + b'{"v":1,"partial')
    assert tail("--log", log, "-n", "all", "--json").stdout == b"".join(odd)
    assert tail("--log", log, "-n", "3", "--json").stdout == b"".join(odd[-3:])
    assert tail("--log", log, "-n", "all", "--json", "--run", "r1").stdout == b"".join(odd[:2])
    readable = tail("--log", log, "-n", "all")
    assert readable.returncode == 0 and len(readable.stdout.splitlines()) == 5


# --- hostile text, colour, pipes ----------------------------------------------------------------------

HOSTILE = "\x1b]0;owned title\x07\x1b[2J\x1b[31mred\x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\\r\x9b1m\u202eevil"


def hostile_log(tmp_path: Path) -> Path:
    log = tmp_path / "events.jsonl"
    log.write_bytes(
        step("r1", "acc\x1b[1m", 0, ok=False, error=HOSTILE, url="http://127.0.0.1/\x1b[8m", title=HOSTILE)
        + b'garbage \x1b]52;c;Y2xpcGJvYXJk\x07 \xc2\x9b\n'
    )
    return log


def assert_no_terminal_control(out: bytes, allow_colour: bool = False) -> None:
    text = out.decode()
    if allow_colour:
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # our own SGR colours, only
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 or c in "\u202e\u2028"]
    assert bad == [], f"control characters reached the output: {bad!r}"


def test_escape_sequences_in_events_never_reach_the_terminal(tmp_path: Path) -> None:
    log = hostile_log(tmp_path)
    out = tail("--log", log, "-n", "all").stdout
    assert_no_terminal_control(out)
    assert b"error: \\x1b]0;owned title\\x07\\x1b[2J" in out
    assert b"acc\\x1b[1m" in out and b"\\x9b1m\\u202eevil" in out
    assert b"!! invalid line at byte" in out and b"\\x1b]52;c;" in out


def run_in_pty(args: list[str], extra_env: dict[str, str]) -> bytes:
    """Run ``warmup tail ARGS`` with its stdout on a pseudo-terminal; return what it printed."""
    main, secondary = pty.openpty()
    proc = subprocess.Popen([*TAIL, *args], cwd=REPO, env=env(**extra_env), stdout=secondary, stderr=subprocess.PIPE)
    os.close(secondary)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 10)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(timeout=10) == 0
    return b"".join(chunks).replace(b"\r\n", b"\n")


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path: Path) -> None:
    log = hostile_log(tmp_path)
    coloured = run_in_pty(["--log", str(log), "-n", "all"], {"TERM": "xterm"})
    assert b"\x1b[31;1mFAILED\x1b[0m" in coloured
    assert_no_terminal_control(coloured, allow_colour=True)
    plain = run_in_pty(["--log", str(log), "-n", "all"], {"TERM": "xterm", "NO_COLOR": "1"})
    assert b"\x1b" not in plain and b" FAILED " in plain
    assert b"\x1b" not in tail("--log", log, "-n", "all").stdout  # a pipe: no colour


def test_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(step("r1", "alice", 1) * 50_000)
    cmd = f"{sys.executable} -m cli tail --log {log} -n all | head -n 2; echo \"tail exit ${{PIPESTATUS[0]}}\" >&2"
    proc = subprocess.run(["bash", "-c", cmd], cwd=REPO, env=env(), capture_output=True, timeout=30)
    assert len(proc.stdout.splitlines()) == 2
    assert proc.stderr == b"tail exit 0\n"


def test_following_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(step("r1", "alice", 1))
    proc = subprocess.Popen([*TAIL, "-f", "--log", str(log)], cwd=REPO, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()
    with open(log, "ab") as f:  # the next print hits the closed pipe
        f.write(step("r1", "alice", 2))
    assert proc.wait(timeout=10) == 0
    assert proc.stderr is not None and proc.stderr.read() == b""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "ten"], "-n 'ten' is not a count"),
        (["--since", "last tuesday"], "--since 'last tuesday' is not a time"),
        (["--type", "step_finishd"], "--type 'step_finishd' is not an event type"),
        (["--log", "/nonexistent/events.jsonl"], "no event log at /nonexistent/events.jsonl: start one with"),
        (["--log", "/dev/null"], "/dev/null is not a file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"")
    proc = tail("--log", log, *args)
    assert proc.returncode == 2
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warmup: ") and message in lines[0], proc.stderr


# --- the backward reader itself ------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    torn=st.binary(max_size=10).map(lambda b: b.replace(b"\n", b"")),
    block=st.integers(min_value=1, max_value=64),
)
def test_lines_backward_is_the_forward_lines_reversed(lines: list[bytes], torn: bytes, block: int) -> None:
    data = b"".join(x + b"\n" for x in lines) + torn
    fd = os.memfd_create("log")
    try:
        os.write(fd, data)
        end = complete_end(fd, len(data))
        assert end == len(data) - len(torn)
        got = list(lines_backward(fd, end, block=block))
        assert [x.data for x in reversed(got)] == lines
        assert all(data[x.start : x.end] == x.data + b"\n" for x in got)
    finally:
        os.close(fd)


def test_a_failed_optional_step_is_its_own_colour_and_word_never_the_red_failed(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(step("r1", "alice", 1, ok=False, error="no banner", optional=True)
                    + step("r1", "alice", 2, ok=False, error="no #go"))
    plain = tail("--log", log, "-n", "all").stdout.decode().splitlines()
    assert plain[0].endswith("r1 alice step_finished step 2 click failed (optional) 12ms error: no banner")
    assert plain[1].endswith("r1 alice step_finished step 3 click FAILED 12ms error: no #go")
    coloured = run_in_pty(["--log", str(log), "-n", "all"], {"TERM": "xterm"}).decode().splitlines()
    assert "\x1b[38;5;208mfailed (optional)\x1b[0m" in coloured[0] and "\x1b[38;5;208merror: no banner" in coloured[0]
    assert "\x1b[31;1m" not in coloured[0] and "\x1b[31;1mFAILED\x1b[0m" in coloured[1]
