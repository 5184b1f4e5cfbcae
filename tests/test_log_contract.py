"""The log contract: what every backend of ``warmup.log.base.Log`` must do, run against each one.

Each test takes a ``harness``: a fresh, empty log of one backend plus the few things a test cannot
do through the interface (leave a torn last line, truncate the log, put another log in its place,
name one that is not there). Adding a backend is one more ``Harness`` class and one more entry in
``BACKENDS``; every test here then runs against it.

Everything is real: real files, real threads, real processes. No timing assertion is tighter than
"well before a timeout of seconds" (these run on one core under ``taskset -c 0`` too).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from nats_servers import NatsServer, nats_server, stream_name  # noqa: F401 (a fixture)

from warmup.errors import UsageError
from warmup.events.follower import Notice
from warmup.events.reader import Line
from warmup.log import Batch, FileLog, Log, LogMismatch, LogMissing, LogReader, open_log_backend


class Harness:
    """One backend's fresh log and the out-of-band operations the contract needs."""

    log: Log
    spec: str  # what ``open_log_backend`` takes to open this same log (in another process too)

    def missing(self) -> Log:
        """A log of this backend that does not exist."""
        raise NotImplementedError

    def write_torn(self, data: bytes) -> None:
        """Leave ``data`` (no newline) at the end, as a writer caught mid-line does."""
        raise NotImplementedError

    def complete_torn(self, rest: bytes) -> None:
        """Finish the torn line: ``rest`` and its newline."""
        raise NotImplementedError

    def truncate(self) -> None:
        """Make the log lose its last part (in place)."""
        raise NotImplementedError

    def replace(self, lines: list[bytes]) -> None:
        """Put another log, holding ``lines``, where this one was (same name)."""
        raise NotImplementedError


class FileHarness(Harness):
    def __init__(self, root: Path) -> None:
        self.path = root / "logs" / "events.jsonl"
        self.spec = str(self.path)
        self.log = FileLog(self.path)
        self._root = root

    def missing(self) -> Log:
        return FileLog(self._root / "nowhere" / "events.jsonl")

    def _raw(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def write_torn(self, data: bytes) -> None:
        self._raw(data)

    def complete_torn(self, rest: bytes) -> None:
        self._raw(rest + b"\n")

    def truncate(self) -> None:
        os.truncate(self.path, os.path.getsize(self.path) // 2)

    def replace(self, lines: list[bytes]) -> None:
        other = self.path.with_name("other.jsonl")
        other.write_bytes(b"".join(line + b"\n" for line in lines))
        os.replace(other, self.path)


class NatsHarness(Harness):
    """A fresh stream on the session's nats-server. A message is atomic, so a torn line is kept
    aside until completed; ``truncate`` deletes the last half of the messages; ``replace`` deletes
    the stream and creates it again holding ``lines``."""

    def __init__(self, server: NatsServer) -> None:
        from warmup.log.nats import NatsLog

        self.server = server
        self.spec = f"{server.url}/{stream_name('C')}"
        self.log = NatsLog(self.spec)
        self._torn = b""

    def missing(self) -> Log:
        from warmup.log.nats import NatsLog

        return NatsLog(f"{self.server.url}/{stream_name('MISSING')}")

    def write_torn(self, data: bytes) -> None:
        self._torn = data

    def complete_torn(self, rest: bytes) -> None:
        data, self._torn = self._torn, b""
        append(self.log, data + rest)

    def truncate(self) -> None:
        from warmup.log.nats import NatsLog

        log = self.log
        assert isinstance(log, NatsLog)
        info = log.info()
        assert info is not None
        last = int(info["state"]["last_seq"])
        for seq in range(last // 2 + 1, last + 1):
            assert log.call(log.api.delete_msg(seq))

    def replace(self, lines: list[bytes]) -> None:
        from warmup.log.nats import NatsLog

        log = self.log
        assert isinstance(log, NatsLog)
        log.call(log.api.delete())
        append(log, *lines)

    def close(self) -> None:
        from warmup.log.nats import NatsLog

        log = self.log
        assert isinstance(log, NatsLog)
        if log._conn is not None:
            log.call(log.api.delete())


BACKENDS = ["file", "nats"]


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "file":
        yield FileHarness(tmp_path)
    elif request.param == "nats":
        pytest.importorskip("nats")
        nats = NatsHarness(request.getfixturevalue("nats_server"))
        yield nats
        nats.close()
    else:  # pragma: no cover
        raise AssertionError(request.param)


def event(i: int, pad: int = 0) -> bytes:
    return b'{"type":"test","i":%d,"pad":"%s"}' % (i, b"x" * pad)


def append(log: Log, *lines: bytes) -> None:
    appender = log.appender()
    try:
        for line in lines:
            appender.append_line(line + b"\n")
    finally:
        appender.close()


def read_all(reader: LogReader, position: int, max_bytes: int = 1 << 20) -> tuple[list[bytes], int]:
    """Every complete line from ``position``, chaining reads; and the final position."""
    out: list[bytes] = []
    while True:
        batch = reader.read(position, max_bytes)
        assert batch.start == position
        if not batch.lines:
            assert batch.end == position
            return out, position
        assert batch.end > position
        out.extend(batch.lines)
        position = batch.end


APPENDER = (
    "import sys\n"
    "from warmup.log import open_log_backend\n"
    "appender = open_log_backend(sys.argv[1]).appender()\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "for line in sys.argv[2:]:\n"
    "    appender.append_line(line.encode() + b'\\n')\n"
    "appender.close()\n"
)


def appender_process(spec: str, lines: list[bytes]) -> subprocess.Popen[str]:
    """Another process that opens the log for appending, says ``ready``, and appends on a line of stdin."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", APPENDER, spec, *(line.decode() for line in lines)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


# -- reading ------------------------------------------------------------------------------------

def test_append_then_read_in_order_with_chaining_positions(harness: Harness) -> None:
    lines = [event(i) for i in range(50)]
    append(harness.log, *lines)
    with harness.log.reader() as reader:
        batch = reader.read(harness.log.START, 1 << 20)
        assert batch.start == harness.log.START
        assert batch.lines == lines
        after = reader.read(batch.end, 1 << 20)
        assert after == Batch([], batch.end, batch.end)
        append(harness.log, event(50))
        more = reader.read(batch.end, 1 << 20)
        assert more.start == batch.end and more.lines == [event(50)] and more.end > batch.end


def test_read_from_any_returned_position_continues_exactly(harness: Harness) -> None:
    lines = [event(i, pad=i % 7) for i in range(30)]
    append(harness.log, *lines)
    with harness.log.reader() as reader:
        batch = reader.read(harness.log.START, 1 << 20)
        positions = reader.positions(batch)
        for i, position in enumerate(positions):
            rest, end = read_all(reader, position)
            assert rest == lines[i:]
            assert end == batch.end


def test_positions_has_one_per_line_then_the_end(harness: Harness) -> None:
    append(harness.log, *(event(i) for i in range(10)))
    with harness.log.reader() as reader:
        for start in (harness.log.START, reader.read(harness.log.START, 1 << 20).end):
            batch = reader.read(start, 1 << 20)
            positions = reader.positions(batch)
            assert len(positions) == len(batch.lines) + 1
            assert positions[0] == batch.start and positions[-1] == batch.end
            assert positions == sorted(set(positions))  # they grow along the log


def test_a_torn_last_line_is_not_read_until_complete(harness: Harness) -> None:
    append(harness.log, event(0), event(1))
    harness.write_torn(b'{"type":"test","i":2,')
    with harness.log.reader() as reader:
        batch = reader.read(harness.log.START, 1 << 20)
        assert batch.lines == [event(0), event(1)]
        assert reader.read(batch.end, 1 << 20).lines == []
        assert reader.end() == batch.end
        assert [line.data for line in reader.lines_backward(reader.end())] == [event(1), event(0)]
        harness.complete_torn(b'"pad":""}')
        assert reader.read(batch.end, 1 << 20).lines == [event(2)]
        assert reader.end() > batch.end


def test_max_bytes_is_respected_but_a_longer_line_comes_whole(harness: Harness) -> None:
    lines = [event(i, pad=100) for i in range(100)]
    long_line = event(100, pad=300_000)
    append(harness.log, *lines, long_line, event(101))
    size = len(lines[0]) + 1
    with harness.log.reader() as reader:
        batch = reader.read(harness.log.START, 10 * size)
        assert 1 <= len(batch.lines) <= 10
        assert batch.lines == lines[: len(batch.lines)]
        got, _ = read_all(reader, harness.log.START, max_bytes=1000)
        assert got == [*lines, long_line, event(101)]
        at_long = reader.positions(reader.read(harness.log.START, 1 << 20))[100]
        whole = reader.read(at_long, 100)
        assert whole.lines[0] == long_line


def test_end_is_just_past_the_last_complete_line(harness: Harness) -> None:
    append(harness.log, *(event(i) for i in range(20)))
    with harness.log.reader() as reader:
        _, end = read_all(reader, harness.log.START, max_bytes=200)
        assert reader.end() == end
        append(harness.log, event(20))
        assert reader.end() > end
        assert reader.read(end, 1 << 20) == Batch([event(20)], end, reader.end())


def test_an_empty_log_ends_at_start(harness: Harness) -> None:
    append(harness.log)  # created, no line
    with harness.log.reader() as reader:
        assert reader.end() == harness.log.START
        assert reader.read(harness.log.START, 1 << 20) == Batch([], harness.log.START, harness.log.START)
        assert list(reader.lines_backward(reader.end())) == []


def test_lines_backward_from_the_end_gives_the_lines_reversed(harness: Harness) -> None:
    lines = [event(i, pad=i * 13 % 200) for i in range(500)]
    append(harness.log, *lines)
    with harness.log.reader() as reader:
        batch = reader.read(harness.log.START, 1 << 30)
        positions = reader.positions(batch)
        backward = list(reader.lines_backward(reader.end()))
        assert [line.data for line in backward] == lines[::-1]
        assert [(line.start, line.end) for line in backward] == list(itertools.pairwise(positions))[::-1]
        middle = positions[200]
        assert [line.data for line in reader.lines_backward(middle)] == lines[:200][::-1]


def test_lines_backward_with_a_very_long_line(harness: Harness) -> None:
    long_line = event(1, pad=3_000_000)
    append(harness.log, event(0), long_line, event(2))
    with harness.log.reader() as reader:
        assert [line.data for line in reader.lines_backward(reader.end())] == [event(2), long_line, event(0)]


# -- identity -----------------------------------------------------------------------------------

def test_fingerprint_is_stable_and_none_at_start(harness: Harness) -> None:
    append(harness.log, *(event(i) for i in range(10)))
    with harness.log.reader() as reader:
        assert reader.fingerprint(harness.log.START) is None
        end = reader.end()
        print_ = reader.fingerprint(end)
        assert isinstance(print_, str) and print_
        assert reader.fingerprint(end) == print_
    with harness.log.reader() as again:
        assert again.fingerprint(end) == print_
        again.verify(harness.log.START, None)
        again.verify(end, print_)


def test_verify_passes_on_the_same_log_grown_further(harness: Harness) -> None:
    append(harness.log, *(event(i) for i in range(10)))
    with harness.log.reader() as reader:
        end = reader.end()
        fingerprint = reader.fingerprint(end)
    append(harness.log, *(event(i, pad=5000) for i in range(10, 20)))
    with harness.log.reader() as reader:
        reader.verify(end, fingerprint)
        assert reader.fingerprint(end) == fingerprint


def test_verify_refuses_a_truncated_log(harness: Harness) -> None:
    append(harness.log, *(event(i) for i in range(100)))
    with harness.log.reader() as reader:
        end = reader.end()
        fingerprint = reader.fingerprint(end)
    harness.truncate()
    with harness.log.reader() as reader, pytest.raises(LogMismatch) as caught:
        reader.verify(end, fingerprint)
    assert caught.value.exit_code == 1
    assert "warmup replay" in str(caught.value) and harness.log.name in str(caught.value)


def test_verify_refuses_a_replaced_log(harness: Harness) -> None:
    lines = [event(i) for i in range(100)]
    append(harness.log, *lines)
    with harness.log.reader() as reader:
        end = reader.end()
        fingerprint = reader.fingerprint(end)
    harness.replace([b'{"type":"other","i":%d}' % i for i in range(300)])  # as long or longer
    with harness.log.reader() as reader, pytest.raises(LogMismatch) as caught:
        reader.verify(end, fingerprint)
    assert "warmup replay" in str(caught.value)


# -- watching -----------------------------------------------------------------------------------

def test_watch_wakes_promptly_after_an_append_from_another_thread(harness: Harness) -> None:
    append(harness.log, event(0))
    with harness.log.reader() as reader, harness.log.watch() as watch:
        before = reader.end()
        timer = threading.Timer(0.2, append, (harness.log, event(1)))
        t0 = time.monotonic()
        timer.start()
        while reader.end() == before:
            assert time.monotonic() - t0 < 4, "the watch never saw the append"
            watch.wait(5)  # a missed wake-up would cost 5 s
        assert time.monotonic() - t0 < 1
        timer.join()


def test_watch_wakes_promptly_after_an_append_from_another_process(harness: Harness) -> None:
    append(harness.log, event(0))
    proc = appender_process(harness.spec, [event(1), event(2)])
    try:
        with harness.log.reader() as reader, harness.log.watch() as watch:
            before = reader.end()
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            t0 = time.monotonic()
            while reader.end() == before:
                assert time.monotonic() - t0 < 4, "the watch never saw the append"
                watch.wait(5)
            assert time.monotonic() - t0 < 2.5
    finally:
        assert proc.wait(timeout=30) == 0
    with harness.log.reader() as reader:
        assert read_all(reader, harness.log.START)[0] == [event(0), event(1), event(2)]


def test_watch_wakes_when_the_log_is_created(harness: Harness) -> None:
    assert not harness.log.exists()
    with harness.log.watch() as watch:
        timer = threading.Timer(0.2, append, (harness.log, event(0)))
        t0 = time.monotonic()
        timer.start()
        while not harness.log.exists():
            assert time.monotonic() - t0 < 4, "the watch never saw the log created"
            watch.wait(5)
        assert time.monotonic() - t0 < 1
        timer.join()
    assert harness.log.exists()


def test_watch_returns_after_the_timeout_when_nothing_happens(harness: Harness) -> None:
    append(harness.log, event(0))
    with harness.log.watch() as watch:
        t0 = time.monotonic()
        watch.wait(0.3)
        elapsed = time.monotonic() - t0
    assert 0.25 <= elapsed < 5


def test_watch_stop_wakes_a_blocked_wait(harness: Harness) -> None:
    append(harness.log, event(0))
    with harness.log.watch() as watch:
        timer = threading.Timer(0.2, watch.stop)
        t0 = time.monotonic()
        timer.start()
        watch.wait(10)
        assert time.monotonic() - t0 < 5
        timer.join()


# -- following ----------------------------------------------------------------------------------

def _next_lines(items: Iterator[Line | Notice | None], count: int) -> list[Line]:
    """The next ``count`` lines; fails on a Notice or if it catches up (None) before."""
    out: list[Line] = []
    while len(out) < count:
        item = next(items)
        assert item is not None, f"caught up after {len(out)} of {count} lines"
        assert not isinstance(item, Notice), item
        out.append(item)
    return out


def test_follower_yields_each_line_once_and_none_when_caught_up(harness: Harness) -> None:
    lines = [event(i) for i in range(5)]
    append(harness.log, *lines[:3])
    with harness.log.reader() as reader:
        positions = reader.positions(reader.read(harness.log.START, 1 << 20))
    with harness.log.follower(harness.log.START) as follower:
        items = iter(follower)
        got = _next_lines(items, 3)
        assert [line.data for line in got] == lines[:3]
        assert [line.start for line in got] == positions[:-1]
        assert got[-1].end == positions[-1]
        assert next(items) is None
        timer = threading.Timer(0.2, append, (harness.log, *lines[3:]))
        timer.start()
        t0 = time.monotonic()
        later: list[Line] = []
        while len(later) < 2:
            assert time.monotonic() - t0 < 10
            item = next(items)
            assert not isinstance(item, Notice), item
            if item is not None:
                later.append(item)
        timer.join()
        assert [line.data for line in later] == lines[3:]
        assert later[0].start == positions[-1]
        assert next(items) is None
        follower.stop()
        rest = list(items)
        assert all(item is None for item in rest)


def test_follower_from_a_position_yields_only_what_follows(harness: Harness) -> None:
    append(harness.log, *(event(i) for i in range(6)))
    with harness.log.reader() as reader:
        middle = reader.positions(reader.read(harness.log.START, 1 << 20))[4]
    with harness.log.follower(middle) as follower:
        items = iter(follower)
        assert [line.data for line in _next_lines(items, 2)] == [event(4), event(5)]
        assert next(items) is None


def test_follower_holds_a_torn_line_until_it_is_complete(harness: Harness) -> None:
    append(harness.log, event(0))
    harness.write_torn(b'{"type":"test","i":1,')
    with harness.log.follower(harness.log.START) as follower:
        items = iter(follower)
        assert [line.data for line in _next_lines(items, 1)] == [event(0)]
        assert next(items) is None
        threading.Timer(0.2, harness.complete_torn, (b'"pad":""}',)).start()
        item = next(items)
        while item is None:
            item = next(items)
        assert isinstance(item, Line) and item.data == event(1)


def test_follower_stop_from_another_thread_ends_it(harness: Harness) -> None:
    append(harness.log, event(0))
    with harness.log.follower(harness.log.START) as follower:
        timer = threading.Timer(0.3, follower.stop)
        timer.start()
        t0 = time.monotonic()
        got = [item for item in follower if isinstance(item, Line)]
        assert time.monotonic() - t0 < 5
        timer.join()
    assert [line.data for line in got] == [event(0)]


def test_follower_from_a_reader_continues_where_it_ended(harness: Harness) -> None:
    append(harness.log, event(0), event(1))
    reader = harness.log.reader()
    end = reader.end()
    with harness.log.follower_from(reader, end) as follower:
        items = iter(follower)
        assert next(items) is None
        append(harness.log, event(2))
        item = next(items)
        while item is None:
            item = next(items)
        assert isinstance(item, Line) and item.data == event(2) and item.start == end


def _next_item(items: Iterator[Line | Notice | None]) -> Line | Notice:
    """The next line or notice, past any number of "caught up" (None) items."""
    item = next(items)
    while item is None:
        item = next(items)
    return item


def test_follower_tells_a_replaced_log_and_reads_the_new_one_from_its_start(harness: Harness) -> None:
    append(harness.log, event(0), event(1))
    with harness.log.follower(harness.log.START) as follower:
        items = iter(follower)
        assert [line.data for line in _next_lines(items, 2)] == [event(0), event(1)]
        assert next(items) is None
        other = [b'{"type":"other","i":%d}' % i for i in range(3)]
        threading.Timer(0.2, harness.replace, (other,)).start()
        notice = _next_item(items)
        assert isinstance(notice, Notice) and notice.kind in ("replaced", "truncated"), notice
        got = _next_lines(items, 3)
        assert [line.data for line in got] == other
        assert got[0].start == harness.log.START


def test_follower_waits_for_a_missing_log(harness: Harness) -> None:
    assert not harness.log.exists()
    with harness.log.follower(harness.log.START) as follower:
        items = iter(follower)
        notice = _next_item(items)
        assert isinstance(notice, Notice) and notice.kind == "missing"
        threading.Timer(0.2, append, (harness.log, event(0))).start()
        notice = _next_item(items)
        assert isinstance(notice, Notice) and notice.kind == "created"
        line = _next_item(items)
        assert isinstance(line, Line) and line.data == event(0) and line.start == harness.log.START


# -- appending ----------------------------------------------------------------------------------

def test_appended_lines_are_there_for_a_new_reader_at_once(harness: Harness) -> None:
    appender = harness.log.appender()
    try:
        for i in range(5):
            appender.append_line(event(i) + b"\n")
            with harness.log.reader() as reader:  # another handle: nothing buffered in the appender
                assert read_all(reader, harness.log.START)[0] == [event(j) for j in range(i + 1)]
    finally:
        appender.close()


def test_appends_from_several_processes_stay_whole_lines(harness: Harness) -> None:
    append(harness.log)
    procs = [appender_process(harness.spec, [event(p * 1000 + i, pad=2000) for i in range(40)]) for p in range(3)]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    with harness.log.reader() as reader:
        got, _ = read_all(reader, harness.log.START)
    assert sorted(got) == sorted(event(p * 1000 + i, pad=2000) for p in range(3) for i in range(40))


# -- a log that is not there --------------------------------------------------------------------

def test_reading_a_missing_log_is_a_usage_error(harness: Harness) -> None:
    log = harness.missing()
    assert not log.exists()
    with pytest.raises(LogMissing) as caught:  # a UsageError
        log.reader()
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2
    assert log.name in str(caught.value)


# -- the file backend's own promises (not part of the contract) ---------------------------------

def test_file_positions_are_byte_offsets_and_described_so(tmp_path: Path) -> None:
    harness = FileHarness(tmp_path)
    append(harness.log, event(0), event(1))
    with harness.log.reader() as reader:
        batch = reader.read(0, 1 << 20)
        assert reader.positions(batch) == [0, len(event(0)) + 1, len(event(0)) + len(event(1)) + 2]
        assert reader.end() == harness.path.stat().st_size
    assert harness.log.describe_position(1234) == "byte 1234"
    assert harness.log.name == str(harness.path)


def test_file_verify_words_what_is_wrong(tmp_path: Path) -> None:
    harness = FileHarness(tmp_path)
    append(harness.log, *(event(i) for i in range(100)))
    with harness.log.reader() as reader:
        end = reader.end()
        fingerprint = reader.fingerprint(end)
    harness.truncate()
    with harness.log.reader() as reader, pytest.raises(LogMismatch, match=r"is shorter \(\d+ bytes\) than"):
        reader.verify(end, fingerprint)
    harness.replace([b'{"type":"other","i":%d}' % i for i in range(300)])
    with harness.log.reader() as reader, pytest.raises(LogMismatch, match=f"bytes before offset {end} differ"):
        reader.verify(end, fingerprint)


def test_file_reader_refuses_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "events.jsonl"
    os.mkfifo(fifo)
    log = FileLog(fifo)
    assert not log.exists()
    with pytest.raises(UsageError, match="FIFO"):
        log.reader()


def test_file_watch_survives_a_rotation(tmp_path: Path) -> None:
    harness = FileHarness(tmp_path)
    append(harness.log, event(0))
    with harness.log.watch() as watch:
        os.rename(harness.path, harness.path.with_name("events.jsonl.1"))
        append(harness.log, event(1))  # a new file at the name
        watch.wait(0.1)
        with harness.log.reader() as reader:
            before = reader.end()
            timer = threading.Timer(0.2, append, (harness.log, event(2)))
            t0 = time.monotonic()
            timer.start()
            while reader.end() == before:
                assert time.monotonic() - t0 < 4
                watch.wait(5)
            assert time.monotonic() - t0 < 1
            timer.join()


def test_open_log_backend(tmp_path: Path) -> None:
    log = open_log_backend(tmp_path / "events.jsonl")
    assert isinstance(log, FileLog) and log.name == str(tmp_path / "events.jsonl")
    from warmup.log.nats import NatsLog

    nats = open_log_backend("nats://127.0.0.1:4222/WARMUP", replicas=3)
    assert isinstance(nats, NatsLog) and nats.name == "nats://127.0.0.1:4222/WARMUP" and nats.replicas == 3
    assert isinstance(open_log_backend("tls://h1:4222,h2:4223"), NatsLog)  # no connection until used
    assert open_log_backend("nats://h:4222").name == "nats://h:4222/WARMUP"
    with pytest.raises(UsageError) as caught:
        open_log_backend("nats://u:s3cret@localhost:4222/warmup")
    assert caught.value.exit_code == 2 and "s3cret" not in str(caught.value)
    assert "WARMUP_NATS_CREDS" in str(caught.value)
