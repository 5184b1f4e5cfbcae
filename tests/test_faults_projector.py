"""Fault injection on the projector side: killed projectors, and arbitrary bytes in the log.

Marked ``faults`` so the suite can be run on its own: ``pytest -m faults``.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from projection_support import REPO, dump, rows, run_lines, synthetic_log, warmup

from warmup.events.envelope import MAX_DEPTH, EventDecoder, InvalidEvent, decode
from warmup.projector.projector import Projector, StrictStop
from warmup.projector.replay import replay

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def log_200k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_log(tmp_path_factory.mktemp("faults"), 200_000, seed=11)


def test_sigkill_the_projector_10_times_then_finish_equals_a_clean_replay(log_200k: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference.db"
    replay(log_200k, reference)
    expected = dump(reference)
    rnd = random.Random(5)
    size = log_200k.stat().st_size
    landed = 0
    for attempt in range(10):
        db = tmp_path / f"killed-{attempt}.db"
        # Kill the same database's projector several times: each restart resumes from its checkpoint.
        for _ in range(3):
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli", "project", "--log", str(log_200k), "--db", str(db)],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            start = _offset(db)
            deadline = time.monotonic() + 30
            while proc.poll() is None and _offset(db) == start and time.monotonic() < deadline:
                time.sleep(0.005)  # until this process has committed a batch (its start-up varies with load)
            time.sleep(rnd.uniform(0, 0.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            landed += 0 < _offset(db) < size
        assert warmup("project", "--log", log_200k, "--db", db).returncode == 0
        assert dump(db) == expected, f"attempt {attempt} differs from a clean replay"
    print(f"{landed} of 30 kills landed in the middle of the log")
    assert landed >= 5, f"only {landed} of 30 kills landed in the middle of the log"


def _offset(db: Path) -> int:
    """The checkpoint's offset, or 0 before there is one."""
    if not db.exists():  # (connecting would create it)
        return 0
    try:
        return int(rows(db, "SELECT \"position\" FROM warmup_checkpoints WHERE name = 'core'")[0]["position"])
    except Exception:  # no file or no table yet
        return 0


VALID = run_lines("r1", ["alice", "bob"], {"bob": "FAILED"})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=400), split=st.integers(0, len(VALID)))
def test_arbitrary_bytes_never_crash_project_and_every_line_is_accounted_for(
    tmp_path_factory: pytest.TempPathFactory, garbage: bytes, split: int
) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    log, db = tmp / "events.jsonl", tmp / "warmup.db"
    bad = garbage + b"\n"  # its own lines, however many newlines it holds
    log.write_bytes(b"".join(VALID[:split]) + bad + b"".join(VALID[split:]))
    with Projector(log, db) as projector:
        result = projector.catch_up()
    assert result.rejected == bad.count(b"\n")
    assert result.applied == len(VALID)
    assert rows(db, "SELECT COUNT(*) AS n FROM rejected_events") == [{"n": bad.count(b"\n")}]
    assert rows(db, "SELECT status FROM runs") == [{"status": "FAILED"}]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(min_size=1, max_size=300))
def test_arbitrary_bytes_never_crash_tail(tmp_path_factory: pytest.TempPathFactory, garbage: bytes) -> None:
    tmp = tmp_path_factory.mktemp("fuzz-tail")
    log = tmp / "events.jsonl"
    log.write_bytes(VALID[0] + garbage + b"\n" + b"".join(VALID[1:]))
    for args in (["-n", "all"], ["-n", "all", "--json"], ["-n", "3"], ["--type", "run_finished", "-n", "all"]):
        # bytes, not text: --json prints the log's lines exactly, invalid UTF-8 included
        result = subprocess.run([sys.executable, "-m", "cli", "tail", "--log", str(log), *args],
                                cwd=REPO, capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert b"Traceback" not in result.stderr
    assert "run_finished" in warmup("tail", "--log", log, "-n", "1").stdout


@st.composite
def crafted_values(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A JSON value for an unknown field, and whether a reader must accept it: nested lists and
    objects of any depth (past ``MAX_DEPTH`` they are refused), or a string with invalid UTF-8."""
    if draw(st.booleans()):
        depth = draw(st.one_of(st.integers(1, 280), st.integers(900, 1100), st.integers(1, 4000)))
        opens = draw(st.lists(st.sampled_from([b"[", b'{"k":']), min_size=depth, max_size=depth))
        value = b"".join(opens) + b"1" + b"".join(b"]" if o == b"[" else b"}" for o in reversed(opens))
        return value, depth + 1 <= MAX_DEPTH  # (+1: the event's own object)
    text = draw(st.binary(min_size=1, max_size=20)).replace(b'"', b"").replace(b"\\", b"").replace(b"\n", b"")
    try:
        text.decode()
        valid = all(c >= 0x20 for c in text)
    except UnicodeDecodeError:
        valid = False
    return b'"' + text + b'"', valid


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(crafted_values(), min_size=1, max_size=4), where=st.lists(st.integers(1, len(VALID) - 1),
                                                                                min_size=4, max_size=4))
def test_invalid_utf8_and_deep_nesting_never_crash_and_take_one_decision(
    tmp_path_factory: pytest.TempPathFactory, values: list[tuple[bytes, bool]], where: list[int]
) -> None:
    tmp = tmp_path_factory.mktemp("fuzz-crafted")
    log, db = tmp / "events.jsonl", tmp / "warmup.db"
    lines = list(VALID)
    crafted: dict[int, bool] = {}
    for n, ((value, ok), i) in enumerate(zip(values, where, strict=False)):
        lines[i] = lines[i][:-2] + b',"extra_' + str(n).encode() + b'":' + value + b"}\n"
        crafted[i] = crafted.get(i, True) and ok
    log.write_bytes(b"".join(lines))
    decoder = EventDecoder()
    for i, ok in crafted.items():  # one decision for a line, whichever way it is read
        verdicts = []
        for read in (decoder, EventDecoder.slow, decode):
            try:
                read(lines[i][:-1])
                verdicts.append(True)
            except InvalidEvent:
                verdicts.append(False)
        assert verdicts == [ok] * 3, (i, verdicts)
    with Projector(log, db) as projector:
        result = projector.catch_up()
    assert result.applied + result.rejected == len(lines)
    assert [r["position"] for r in rows(db, 'SELECT "position" FROM rejected_events ORDER BY "position"')] == [
        sum(map(len, lines[:i])) for i in sorted(crafted) if not crafted[i]]
    with pytest.raises(StrictStop) if not all(crafted.values()) else nullcontext():
        with Projector(log, tmp / "strict.db", strict=True) as projector:
            projector.catch_up()
    replay(log, tmp / "replayed.db")
    assert dump(tmp / "replayed.db") == dump(db)
