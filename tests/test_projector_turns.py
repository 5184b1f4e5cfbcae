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
from projection_support import dump, line, rows, run_lines, ts

from warmup.projections.core import rows as rows_module
from warmup.projections.core.rows import IDS_PER_CHUNK
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
    return {k: v for k, v in dump(db).items() if k != "warmup_checkpoints"}


@pytest.mark.parametrize("per_chunk", [2, IDS_PER_CHUNK])  # (2: each reload after the other's commit reads chunks)
@pytest.mark.parametrize("batch_bytes", [1, 900, 1 << 20])
def test_two_projectors_taking_turns_equal_one_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      batch_bytes: int, per_chunk: int) -> None:
    monkeypatch.setattr(rows_module, "IDS_PER_CHUNK", per_chunk)
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
    ("warmup_checkpoints", "1", "INSERT"),  # every row of the batch written, then the checkpoint refused
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


# -- the ids of a run in flight: stored once, append-only ------------------------------------------
def long_run(n_steps: int) -> list[bytes]:
    """A run in flight: run_started, two accounts started, then ``n_steps`` ok steps (no run_finished)."""
    out = [line("run_started", ts(0), run_id="long", task_id="t", task_name="T", accounts=["alice", "bob"],
                steps=n_steps, concurrency=2, host="test", pid=1),
           line("account_started", ts(1), run_id="long", account_id="alice", attempt=1),
           line("account_started", ts(2), run_id="long", account_id="bob", attempt=1)]
    out += [line("step_finished", ts(3 + i), run_id="long", account_id=("alice", "bob")[i % 2], index=i // 2,
                 action="click", ok=True, duration_ms=1.0, error=None) for i in range(n_steps)]
    return out


def count_id_bytes_written(db: Path) -> None:
    """A trigger that adds up, in ``ids_written``, the bytes of every run_event_ids row written."""
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE ids_written (n INTEGER);
        CREATE TRIGGER count_ids AFTER INSERT ON run_event_ids
            BEGIN INSERT INTO ids_written VALUES (length(NEW.ids)); END;
    """)
    conn.close()


def ids_of(db: Path) -> tuple[int, int]:
    """(bytes stored in run_event_ids, bytes written to it so far)."""
    conn = sqlite3.connect(db)
    try:
        stored = conn.execute("SELECT COALESCE(SUM(length(ids)), 0) FROM run_event_ids").fetchone()[0]
        written = conn.execute("SELECT COALESCE(SUM(n), 0) FROM ids_written").fetchone()[0]
        return stored, written
    finally:
        conn.close()


@pytest.mark.parametrize("per_chunk", [3, IDS_PER_CHUNK])
def test_a_run_in_flight_writes_each_id_once_across_many_increments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     per_chunk: int) -> None:
    monkeypatch.setattr(rows_module, "IDS_PER_CHUNK", per_chunk)
    lines = long_run(2 * IDS_PER_CHUNK + 60)  # (three chunks at the default size)
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(lines[:5]))
    with Projector(log, db) as projector:
        projector.catch_up()
    count_id_bytes_written(db)
    applied, written_before = 5, ids_of(db)[1]
    projector = Projector(log, db)
    try:
        for start in range(5, len(lines), 7):  # the log grows by 7 lines; a new process every 10 increments
            if start % 70 == 5:
                projector.close()
                projector = Projector(log, db)
            with open(log, "ab") as f:
                f.write(b"".join(lines[start:start + 7]))
            new = projector.catch_up().applied
            applied += new
            stored, written = ids_of(db)
            assert stored == 16 * applied  # every applied id of the run in flight, each once
            # a batch writes its new ids and rewrites at most the last, partly filled chunk: what it
            # costs does not grow with the run
            assert written - written_before <= 16 * (new + per_chunk - 1)
            written_before = written
    finally:
        projector.close()
    assert applied == len(lines)
    chunks = [r["chunk"] for r in rows(db, 'SELECT chunk FROM run_event_ids ORDER BY chunk')]
    assert chunks == list(range(-(-len(lines) // per_chunk)))
    # a later process still knows an id of the first increment, and one of a middle chunk
    with open(log, "ab") as f:
        f.write(lines[1] + lines[per_chunk + 1] + lines[-1])
    with Projector(log, db) as projector:
        again = projector.catch_up()
        assert (again.applied, again.rejected) == (0, 3)
    reasons = [r["reason"] for r in rows(db, 'SELECT reason FROM rejected_events ORDER BY "position"')]
    assert len(reasons) == 3 and all("duplicate event id" in r for r in reasons), reasons
    reference = tmp_path / "reference.db"
    replay(log, reference)
    assert without_checkpoint(db) == without_checkpoint(reference)  # (the chunks too: cut by the ids alone)


@pytest.mark.parametrize("table", ["run_event_ids", "warmup_checkpoints"])  # mid-flush, or after it
def test_a_batch_rolled_back_then_retried_still_rejects_duplicates(tmp_path: Path, table: str) -> None:
    lines = long_run(40)
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(lines[:10]))
    with Projector(log, db) as projector:
        projector.catch_up()
        with open(log, "ab") as f:
            f.write(b"".join(lines[10:20]))
        planted_failure(db, table)
        with pytest.raises(sqlite3.DatabaseError, match="planted failure"):
            projector.catch_up()
        remove_planted(db)
        # the same process retries: the ids it wrote in the failed batch were rolled back with it
        assert projector.catch_up().applied == 10
        with open(log, "ab") as f:  # one id of each batch again, and of the retried one, then more
            f.write(lines[5] + lines[15] + b"".join(lines[20:30]) + lines[12])
        assert projector.catch_up().applied == 10
    with open(log, "ab") as f:  # and a later process
        f.write(lines[3] + lines[18] + b"".join(lines[30:]))
    with Projector(log, db) as projector:
        assert projector.catch_up().applied == len(lines) - 30
    reasons = [r["reason"] for r in rows(db, 'SELECT reason FROM rejected_events ORDER BY "position"')]
    assert len(reasons) == 5 and all("duplicate event id" in r for r in reasons), reasons
    assert rows(db, "SELECT SUM(length(ids)) AS n FROM run_event_ids") == [{"n": 16 * len(lines)}]
    reference = tmp_path / "reference.db"
    replay(log, reference)
    assert without_checkpoint(db) == without_checkpoint(reference)


@pytest.mark.parametrize(("n", "stored"), [(0, 0), (5, 0), (5, 3), (5, 5), (9, 2), (20, 7), (20, 12)])
def test_new_chunks_start_at_the_chunk_of_the_first_unstored_id(monkeypatch: pytest.MonkeyPatch, n: int,
                                                                stored: int) -> None:
    monkeypatch.setattr(rows_module, "IDS_PER_CHUNK", 4)
    ids = dict.fromkeys(f"{i:032x}" for i in range(n))
    chunks = rows_module.new_chunks(ids, stored)
    first = stored // 4
    assert [k for k, _ in chunks] == list(range(first, -(-n // 4)))
    assert [i for _, part in chunks for i in part] == list(ids)[4 * first:]
