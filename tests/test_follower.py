"""The Follower on real files, with inotify and with the polling fallback.

The follower runs in a thread of the test; the file is changed from the test the way other
processes change it (appends through other descriptors, truncate, rename over, remove).
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from pathlib import Path

import pytest

from warmup.events import EventWriter
from warmup.events.follower import Follower, Notice
from warmup.events.reader import Line

pytestmark = pytest.mark.timeout(30)


class Collector:
    """Runs a Follower in a thread; ``take()`` returns the next line or notice (``None``s skipped)."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower
        self.items: queue.Queue[Line | Notice | BaseException] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.follower:
                if item is not None:
                    self.items.put(item)
        except BaseException as exc:  # surfaced by take()
            self.items.put(exc)

    def take(self, timeout: float = 20.0) -> Line | Notice:  # a bound on a hang, not a moment
        item = self.items.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    def nothing_for(self, seconds: float) -> bool:
        try:
            item = self.items.get(timeout=seconds)
        except queue.Empty:
            return True
        self.items.put(item)
        return False

    def finish(self) -> None:
        self.follower.stop()
        self.thread.join(5)
        assert not self.thread.is_alive(), "stop() did not end the iteration"
        self.follower.close()


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


@pytest.fixture(params=[True, False], ids=["inotify", "polling"])
def use_inotify(request: pytest.FixtureRequest) -> bool:
    return request.param


def test_lines_once_partial_held_truncation_replacement_removal(tmp_path: Path, use_inotify: bool) -> None:
    log = tmp_path / "sub" / "events.jsonl"
    c = Collector(Follower(log, use_inotify=use_inotify, poll_s=0.05))
    assert c.follower.uses_inotify is use_inotify
    assert c.take() == Notice("missing", f"{log} does not exist yet; waiting for it")
    log.parent.mkdir()  # the directory appears after the follower started, then the file
    append(log, b"one\n")
    assert c.take().kind == "created"
    assert c.take() == Line(b"one", 0, 4)

    append(log, b"two-first-half")
    assert c.nothing_for(0.3), "a partial line was yielded"
    append(log, b"-second-half\nthree\n")
    assert c.take() == Line(b"two-first-half-second-half", 4, 31)
    assert c.take() == Line(b"three", 31, 37)

    os.truncate(log, 0)
    append(log, b"x\n")
    assert c.take().kind == "truncated"
    assert c.take() == Line(b"x", 0, 2)

    append(log, b"last of the old file\n")
    (tmp_path / "sub" / "next.jsonl").write_bytes(b"new\n")
    os.rename(tmp_path / "sub" / "next.jsonl", log)
    assert c.take() == Line(b"last of the old file", 2, 23)
    assert c.take().kind == "replaced"
    assert c.take() == Line(b"new", 0, 4)

    log.unlink()
    assert c.take().kind == "removed"
    append(log, b"back\n")
    assert c.take().kind == "created"
    assert c.take() == Line(b"back", 0, 5)
    assert c.nothing_for(0.2)
    c.finish()


def test_torn_tail_cut_by_writer_is_read_again_not_glued(tmp_path: Path, use_inotify: bool) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b'{"a":1}\n{"torn')
    c = Collector(Follower(log, use_inotify=use_inotify, poll_s=0.05))
    assert c.take() == Line(b'{"a":1}', 0, 8)
    with EventWriter(log, fsync="batch") as w:  # cuts the torn tail, then appends a whole line
        w.emit("run_finished", run_id="r1", status="COMPLETED")
    line = c.take()
    assert isinstance(line, Line) and line.start == 8 and line.data.startswith(b'{"v":1,')
    assert c.nothing_for(0.2)
    c.finish()


def test_offset_and_stop_from_a_signal_handler_drains_first(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"skip\nkeep\n")
    follower = Follower(log, offset=5)
    seen: list[Line | Notice | None] = []
    old = signal.signal(signal.SIGALRM, lambda *_: follower.stop())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        for item in follower:  # blocks in the wait until the signal handler calls stop()
            seen.append(item)
            if item is None and len(seen) == 2:
                append(log, b"written before the stop\n")
    finally:
        signal.signal(signal.SIGALRM, old)
        follower.close()
    # (it did not block after the stop: the loop ended; a hang would be the test's timeout)
    lines = [x for x in seen if isinstance(x, Line)]
    assert lines == [Line(b"keep", 5, 10), Line(b"written before the stop", 10, 34)]
    assert seen[-1] is None


def test_long_line_and_many_lines(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    big = b"y" * (3 * (1 << 20) + 17)
    log.write_bytes(b"".join(b"%d\n" % i for i in range(50_000)) + big + b"\n" + b"tail\n")
    follower = Follower(log)
    got: list[Line] = []
    for item in follower:
        if item is None:
            follower.stop()
        elif isinstance(item, Line):
            got.append(item)
    follower.close()
    assert [x.data for x in got[:3]] == [b"0", b"1", b"2"]
    assert len(got) == 50_002 and got[-2].data == big and got[-1].data == b"tail"
    assert got[-1].end == log.stat().st_size


def test_truncated_and_rewritten_past_the_position_is_still_noticed(tmp_path: Path) -> None:
    """A size check alone misses this: the file is longer than the read position when looked at."""
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"short-1\nshort-2\n")
    follower = Follower(log, use_inotify=False)
    items = iter(follower)
    assert [next(items), next(items), next(items)] == [Line(b"short-1", 0, 8), Line(b"short-2", 8, 16), None]
    log.write_bytes(b"a much longer first line, rewritten\n")  # truncate + write, between two wake-ups
    assert next(items) == Notice("truncated", f"{log} was truncated; reading it again from its start")
    assert next(items) == Line(b"a much longer first line, rewritten", 0, 36)
    follower.close()
