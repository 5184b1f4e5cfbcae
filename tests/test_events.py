"""The event envelope, the writer and the reader, on real files and real processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from warmup.events import EventWriter, InvalidEvent, decode, encode, make_event, read_lines
from warmup.events.envelope import EventDecoder, RunStarted, StepFinished
from warmup.events.reader import read_block

RUN = {"run_id": "r1", "task_id": "t", "task_name": "T", "accounts": ["a"], "steps": 1,
       "concurrency": 1, "host": "h", "pid": 1}


def test_make_event_has_the_envelope_and_encodes_to_one_line() -> None:
    event = make_event("step_finished", run_id="r1", account_id="a", index=0, action="goto", ok=False,
                       duration_ms=1.5, error="line one\nline two\r\x1b[31m")
    assert event["v"] == 1 and event["type"] == "step_finished" and len(event["id"]) == 32
    assert event["ts"].endswith("Z") and len(event["ts"]) == len("2026-11-29T07:00:00.123456Z")
    data = encode(event)
    assert data.endswith(b"\n") and data.count(b"\n") == 1, "control characters must be escaped inside the line"
    assert decode(data[:-1]) == event


T = b"2026-11-29T07:00:00.000000Z"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"v": 1, "id": "x", "type": "run_started", "ts": "' + T + b'"}', "missing required field"),
        (b'{"id": "x", "type": "run_finished", "ts": "' + T + b'", "run_id": "r", "status": "FAILED"}', "'v'"),
        (b'{"v": 9, "id": "x", "type": "run_finished", "ts": "' + T + b'", "run_id": "r", "status": "FAILED"}',
         "unknown schema version 9"),
        (b'{"v": 1, "id": "x", "type": "coffee_break", "ts": "' + T + b'", "run_id": "r"}', "unknown event type"),
        (b'{"v": 1, "id": "x", "type": "account_started", "ts": "' + T + b'", "run_id": "r",'
         b' "account_id": "a", "attempt": "1"}', "Expected `int`, got `str`"),
        (b'{"v": 1, "id": "x", "type": "run_finished", "ts": "yesterday", "run_id": "r", "status": "FAILED"}',
         "length >= 27"),
        (b'{"v": 1, "id": "x", "type": "account_started", "ts": "' + T + b'", "run_id": "r",'
         b' "account_id": "a", "attempt": 9223372036854775808}', "Expected `int` <= 9223372036854775807"),
    ],
)
def test_invalid_lines_say_why(line: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason.replace("[", r"\[")):
        decode(line)
    with pytest.raises(InvalidEvent, match=reason.replace("[", r"\[")):
        EventDecoder()(line)


def test_fast_decoder_gives_typed_events_and_ignores_unknown_fields() -> None:
    decoder = EventDecoder()
    event = decoder(encode(make_event("run_started", **RUN))[:-1])
    assert isinstance(event, RunStarted) and event.accounts == ["a"]
    extra = orjson.dumps({**make_event("step_finished", run_id="r", account_id="a", index=1, action="goto",
                                       ok=True, duration_ms=3, error=None), "added_later": [1, 2]})
    step = decoder(extra)
    assert isinstance(step, StepFinished) and step.duration_ms == 3.0


def test_make_event_refuses_a_wrong_event() -> None:
    with pytest.raises(InvalidEvent, match="accounts"):
        make_event("run_started", **{**RUN, "accounts": "alice"})


def test_writer_creates_a_private_log_and_appends_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "sub" / "events.jsonl"
    with EventWriter(log) as writer:
        writer.emit("run_started", **RUN)
        writer.emit("run_finished", run_id="r1", status="COMPLETED")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    lines = list(read_lines(log))
    assert [decode(line.data)["type"] for line in lines] == ["run_started", "run_finished"]
    assert lines[0].start == 0 and lines[1].start == lines[0].end and lines[1].end == log.stat().st_size


def test_writer_cuts_a_torn_tail_and_says_how_much(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "events.jsonl"
    whole = encode(make_event("run_started", **RUN))
    log.write_bytes(whole + b'{"v": 1, "id": "half-writ')
    with EventWriter(log) as writer:
        assert writer.repaired_bytes == len(b'{"v": 1, "id": "half-writ')
        assert "cut a torn last line (25 bytes" in capsys.readouterr().err
        writer.emit("run_finished", run_id="r1", status="COMPLETED")
    data = log.read_bytes()
    assert data.startswith(whole) and data.count(b"\n") == 2
    assert all(decode(line.data) for line in read_lines(log))


def test_writer_cuts_a_tail_torn_after_it_opened(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    with EventWriter(log) as writer:
        writer.emit("run_started", **RUN)
        with open(log, "ab") as other:  # another writer dies mid-line while ours is open
            other.write(b'{"v":1,"id":"torn')
        writer.emit("run_finished", run_id="r1", status="COMPLETED")
    assert [decode(line.data)["type"] for line in read_lines(log)] == ["run_started", "run_finished"]


def test_writer_rejects_a_line_that_is_not_exactly_one_line(tmp_path: Path) -> None:
    with EventWriter(tmp_path / "e.jsonl") as writer, pytest.raises(ValueError):
        writer.append_line(b'{"a": 1}\n{"b": 2}\n')


def test_fsync_batch_mode_still_writes_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "e.jsonl"
    with EventWriter(log, fsync="batch") as writer:
        for _ in range(100):
            writer.emit("run_finished", run_id="r", status="FAILED")
    assert len(list(read_lines(log))) == 100


APPENDER = """
import sys
import time
from warmup.events import EventWriter
log, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
pad = "x" * 3000  # long lines make a torn or interleaved write likely if locking were wrong
with EventWriter(log, fsync="batch") as w:
    for i in range(n):
        w.emit("run_finished", run_id=f"{tag}-{i}", status="FAILED", reason=pad)
"""


def test_two_processes_appending_at_once_never_interleave(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(log), tag, "10000"]) for tag in ("p", "q")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    seen = {"p": set(), "q": set()}
    count = 0
    for line in read_lines(log):
        event = decode(line.data)  # raises on any interleaved or torn line
        tag, i = event["run_id"].split("-")
        seen[tag].add(int(i))
        count += 1
    assert count == 20_000
    assert seen["p"] == seen["q"] == set(range(10_000))
    assert log.read_bytes().endswith(b"\n")


def test_reader_never_yields_a_line_without_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b'{"a":1}\n{"b":2}\n{"c":')
    assert [line.data for line in read_lines(log)] == [b'{"a":1}', b'{"b":2}']
    assert [line.data for line in read_lines(log, offset=8)] == [b'{"b":2}']
    fd = os.open(log, os.O_RDONLY)
    try:
        assert read_block(fd, 0, 4) == ([b'{"a":1}', b'{"b":2}'][:1], 8)  # a block grows to hold a whole line
        assert read_block(fd, 16) == ([], 16)
        with open(log, "ab") as f:
            f.write(b"3}\n")
        assert read_block(fd, 16) == ([b'{"c":3}'], 24)
    finally:
        os.close(fd)


SLOW_WRITER = """
import fcntl, os, sys, time
log, marker = sys.argv[1], sys.argv[2]
fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)         # what EventWriter does around a write...
os.write(fd, b'{"half": "of a line')    # ...caught between two parts of one (a short write, say)
open(marker, "w").close()
time.sleep(1.0)
os.write(fd, b' that is slow"}\\n')
fcntl.flock(fd, fcntl.LOCK_UN)
"""


def test_a_writer_never_cuts_a_line_another_writer_is_still_writing(tmp_path: Path) -> None:
    """The lock is what tells a torn tail (its writer died) from a line being written: test that."""
    log, marker = tmp_path / "events.jsonl", tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(log), str(marker)])
    while not marker.exists():
        assert proc.poll() is None
        time.sleep(0.01)
    with EventWriter(log, on_repair=None) as writer:  # opening checks the tail under the lock too
        writer.emit("run_finished", run_id="r1", status="COMPLETED")
        assert writer.repaired_bytes == 0
    # It waited for the other writer's lock: had it not, it would have cut the half line or written into
    # it, and the first line below would not be whole (no clock needed to tell).
    assert proc.wait(timeout=10) == 0
    assert log.read_bytes().split(b"\n")[0] == b'{"half": "of a line that is slow"}'
    assert [decode(line.data)["type"] for line in list(read_lines(log))[1:]] == ["run_finished"]
