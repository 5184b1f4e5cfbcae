"""Deterministic, fast guards of the projector's core promises (no hypothesis, no kills, no timing).

- Two projectors taking turns on one database end with the tables of one replay: each must drop
  its cached rows when the other committed.
- The checkpoint commits with its rows: a transaction that fails after writing rows (a real SQLite
  failure, raised by a trigger) leaves neither rows nor checkpoint moved.
- Each event is applied exactly once: projecting a small log cut anywhere, in two or three
  increments, gives the tables of one replay.
"""

from __future__ import annotations

import sqlite3
from itertools import combinations
from pathlib import Path

import pytest
from projection_support import dump, line, run_lines, ts

from warmup.projector.projector import Projector
from warmup.projector.replay import replay

ACCOUNTS = ["alice", "bob", "carol"]


def growing_log() -> list[bytes]:
    """Several runs over the same accounts (so the accounts rows change in every run), with a
    repeated line and a bad one, interleaved so that cuts fall inside runs."""
    runs = [
        run_lines(f"r{i}", ACCOUNTS, {ACCOUNTS[i % 3]: "FAILED"}, task_id=f"t{i % 2}") for i in range(5)
    ]
    out: list[bytes] = []
    for i in range(max(map(len, runs))):
        for r in runs[:3] if i < len(runs[0]) else []:
            out.append(r[i])
    for r in runs[3:]:
        out.extend(r)
    out.insert(7, out[5])  # a line again (the same id)
    out.insert(11, b"not json\n")
    return out


def without_checkpoint(db: Path) -> dict[str, list[tuple[object, ...]]]:
    return {k: v for k, v in dump(db).items() if k != "projector_checkpoint"}


@pytest.mark.parametrize("batch_bytes", [1, 900, 1 << 20])
def test_two_projectors_taking_turns_equal_one_replay(tmp_path: Path, batch_bytes: int) -> None:
    lines = growing_log()
    full_log, reference = tmp_path / "full.jsonl", tmp_path / "reference.db"
    full_log.write_bytes(b"".join(lines))
    replay(full_log, reference)

    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"")
    first = Projector(log, db, batch_bytes=batch_bytes)
    second = Projector(log, db, batch_bytes=batch_bytes)
    try:
        turns = 0
        for start in range(0, len(lines), 4):  # the log grows by 4 lines, and the projectors alternate
            with open(log, "ab") as f:
                f.write(b"".join(lines[start:start + 4]))
            applied = (first if turns % 2 == 0 else second).catch_up()
            assert applied.applied + applied.rejected > 0
            turns += 1
    finally:
        first.close()
        second.close()
    assert turns >= 10
    assert without_checkpoint(db) == without_checkpoint(reference)


def planted_failure(db: Path, table: str, when: str = "1", what: str = "INSERT") -> None:
    """A trigger that makes SQLite refuse the next row written to ``table`` (when ``when`` holds)."""
    conn = sqlite3.connect(db)
    conn.execute(f'CREATE TRIGGER planted BEFORE {what} ON "{table}" WHEN {when} '
                 "BEGIN SELECT RAISE(ABORT, 'planted failure'); END")
    conn.commit()
    conn.close()


def remove_planted(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER planted")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(("table", "when", "what"), [
    ("projector_checkpoint", "1", "INSERT"),  # every row of the batch written, then the checkpoint refused
    ("runs", "NEW.id = 'r2'", "INSERT"),  # half-way through the rows
    ("rejected_events", "1", "INSERT"),
    ("run_event_ids", "1", "DELETE"),  # (the ids of a run that finished)
])
def test_a_batch_that_fails_before_commit_moves_neither_rows_nor_checkpoint(tmp_path: Path, table: str,
                                                                             when: str, what: str) -> None:
    lines = growing_log()
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(lines[:10]))
    with Projector(log, db) as projector:
        projector.catch_up()
    before = dump(db)
    log.write_bytes(b"".join(lines))
    planted_failure(db, table, when, what)
    with Projector(log, db) as projector, pytest.raises(sqlite3.DatabaseError, match="planted failure"):
        projector.catch_up()
    assert dump(db) == before
    remove_planted(db)
    with Projector(log, db) as projector:
        projector.catch_up()
    reference = tmp_path / "reference.db"
    replay(log, reference)
    assert without_checkpoint(db) == without_checkpoint(reference)


def small_log() -> list[bytes]:
    lines = run_lines("r1", ["alice", "bob"], {"bob": "FAILED"})
    lines.insert(3, lines[2])  # a step again
    lines.insert(6, b"{}\n")
    lines.insert(-1, line("artifact_saved", ts(30), run_id="r1", account_id="bob", path="r1/bob/f.png",
                          sha256="0" * 64, bytes=3, kind="failure", attempt=1))
    return lines


def test_each_event_is_applied_exactly_once_wherever_the_log_is_cut(tmp_path: Path) -> None:
    lines = small_log()
    blob = b"".join(lines)
    log, reference = tmp_path / "events.jsonl", tmp_path / "reference.db"
    log.write_bytes(blob)
    replay(log, reference)
    expected = without_checkpoint(reference)
    boundaries = [sum(map(len, lines[:i])) for i in range(len(lines) + 1)]
    inside = [b + len(x) // 2 for b, x in zip(boundaries, lines, strict=False)]  # torn lines, then completed
    # every pair of line boundaries (three increments), and every line torn once (then completed)
    plans = [(first, second, len(blob)) for first, second in combinations(boundaries, 2)]
    plans += [(torn, len(blob)) for torn in inside]
    checked = 0
    for plan in plans:
        db = tmp_path / "cut.db"
        for end in plan:
            log.write_bytes(blob[:end])
            with Projector(log, db) as projector:
                projector.catch_up()
        assert without_checkpoint(db) == expected, f"increments ending at bytes {plan}"
        for leftover in tmp_path.glob("cut.db*"):
            leftover.unlink()
        checked += 1
    assert checked == len(lines) * (len(lines) + 1) // 2 + len(lines)
