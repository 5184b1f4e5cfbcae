"""A commit writes only the rows that changed (issue 10): a batch costs what its events cost.

With a run of many accounts in flight, a batch that touches one account writes one ``run_accounts``
row, not one per account of the run; a run's row is written only by the events that change it
(run_started, account_finished, run_finished). Counted by triggers in a real SQLite database, so
what is measured is what reached the tables, whichever statements wrote it. The tables stay a pure
function of the log: after every step they equal one replay of it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from projection_support import line, ts

from warmup.projector.projector import Projector
from warmup.projector.replay import replay

N_ACCOUNTS = 300
ACCOUNTS = [f"acct{i:03d}" for i in range(N_ACCOUNTS)]
# The projected tables (the checkpoint aside: its name and its offsets are not the point here).
TABLES = ("tasks", "accounts", "runs", "run_accounts", "run_event_ids", "artifacts", "rejected_events")


def started_run() -> list[bytes]:
    """run_started for ``N_ACCOUNTS`` accounts, and every account started: a big run in flight."""
    out = [line("run_started", ts(0), run_id="big", task_id="t", task_name="T", accounts=ACCOUNTS,
                steps=2, concurrency=N_ACCOUNTS, host="test", pid=1)]
    out += [line("account_started", ts(1), run_id="big", account_id=a, attempt=1) for a in ACCOUNTS]
    return out


def step(account: str, n: int, ok: bool = True) -> bytes:
    return line("step_finished", ts(n), run_id="big", account_id=account, index=0, action="click", ok=ok,
                duration_ms=12.5, error=None if ok else "no #go on the page")


def count_writes(db: Path) -> None:
    """Triggers that count, in ``writes``, every row written to ``runs`` and ``run_accounts``."""
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE writes (tbl TEXT);
        CREATE TRIGGER count_runs AFTER INSERT ON runs BEGIN INSERT INTO writes VALUES ('runs'); END;
        CREATE TRIGGER count_runs_u AFTER UPDATE ON runs BEGIN INSERT INTO writes VALUES ('runs'); END;
        CREATE TRIGGER count_ra AFTER INSERT ON run_accounts BEGIN INSERT INTO writes VALUES ('run_accounts'); END;
        CREATE TRIGGER count_ra_u AFTER UPDATE ON run_accounts
            BEGIN INSERT INTO writes VALUES ('run_accounts'); END;
    """)
    conn.close()


def writes(db: Path) -> dict[str, int]:
    """Rows written to runs and run_accounts since the last call (and forget them)."""
    conn = sqlite3.connect(db)
    try:
        counted = dict(conn.execute("SELECT tbl, COUNT(*) FROM writes GROUP BY tbl").fetchall())
        conn.execute("DELETE FROM writes")
        conn.commit()
    finally:
        conn.close()
    return {"runs": counted.get("runs", 0), "run_accounts": counted.get("run_accounts", 0)}


def tables(db: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(db)
    try:
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in TABLES}
    finally:
        conn.close()


def assert_equals_one_replay(log: Path, db: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference.db"
    for leftover in tmp_path.glob("reference.db*"):
        leftover.unlink()
    replay(log, reference)
    assert tables(db) == tables(reference)


def append(log: Path, *lines: bytes) -> None:
    with open(log, "ab") as f:
        f.write(b"".join(lines))


def test_a_batch_writes_only_the_rows_its_events_changed(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(started_run()))
    with Projector(log, db) as projector:
        projector.catch_up()
        count_writes(db)

        # (the run and its accounts in memory: the cache must not rewrite what it holds)
        append(log, step("acct007", 2))
        assert projector.catch_up().applied == 1
        assert writes(db) == {"runs": 0, "run_accounts": 1}

        append(log, step("acct001", 3), step("acct002", 4, ok=False), step("acct001", 5))
        assert projector.catch_up().applied == 3
        assert writes(db) == {"runs": 0, "run_accounts": 2}  # (acct001 twice: written once)

        append(log, line("account_finished", ts(6), run_id="big", account_id="acct002", status="FAILED",
                         error="step 1 click failed", attempt=1))
        assert projector.catch_up().applied == 1
        assert writes(db) == {"runs": 1, "run_accounts": 1}

        append(log, line("account_finished", ts(7), run_id="big", account_id="acct003", status="FAILED",
                         error="boom", attempt=1, retrying=True))  # (a retry: the run's row is unchanged)
        assert projector.catch_up().applied == 1
        assert writes(db) == {"runs": 0, "run_accounts": 1}

        append(log, line("artifact_saved", ts(8), run_id="big", account_id="acct004", path="shots/a.png",
                         kind="screenshot", attempt=1, sha256="0" * 64, bytes=10))
        assert projector.catch_up().applied == 1
        assert writes(db) == {"runs": 0, "run_accounts": 1}

        append(log, log.read_bytes().splitlines(keepends=True)[-1])  # (already applied: rejected)
        result = projector.catch_up()
        assert (result.applied, result.rejected) == (0, 1)
        assert writes(db) == {"runs": 0, "run_accounts": 0}

    assert_equals_one_replay(log, db, tmp_path)

    # a later process: it loads the run, and still writes only what changed
    with Projector(log, db) as projector:
        append(log, step("acct299", 10))
        assert projector.catch_up().applied == 1
        assert writes(db) == {"runs": 0, "run_accounts": 1}
        append(log, line("run_finished", ts(11), run_id="big", status="INTERRUPTED"))
        assert projector.catch_up().applied == 1
        assert writes(db) == {"runs": 1, "run_accounts": 0}
    assert_equals_one_replay(log, db, tmp_path)


def test_a_run_that_finishes_in_the_batch_still_writes_what_the_batch_changed(tmp_path: Path) -> None:
    """run_finished drops the run's ids, which mark the rows changed since the last commit: the
    rows must be written all the same (and only they)."""
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(started_run()))
    with Projector(log, db) as projector:
        projector.catch_up()
        count_writes(db)
        append(log, step("acct005", 2), step("acct006", 3),
               line("account_finished", ts(4), run_id="big", account_id="acct006", status="COMPLETED",
                    error=None, attempt=1),
               line("run_finished", ts(5), run_id="big", status="INTERRUPTED"))
        assert projector.catch_up().applied == 4
        assert writes(db) == {"runs": 1, "run_accounts": 2}
    assert_equals_one_replay(log, db, tmp_path)


def test_a_new_run_writes_all_its_rows_once(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"")
    with Projector(log, db) as projector:
        projector.catch_up()
        count_writes(db)
        append(log, *started_run())
        projector.catch_up()
        assert writes(db) == {"runs": 1, "run_accounts": N_ACCOUNTS}
    assert_equals_one_replay(log, db, tmp_path)


def planted_failure(db: Path, table: str) -> None:
    """A trigger that makes SQLite refuse the next row written to ``table``."""
    conn = sqlite3.connect(db)
    conn.execute(f'CREATE TRIGGER planted BEFORE INSERT ON "{table}" '
                 "BEGIN SELECT RAISE(ABORT, 'planted failure'); END")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("table", ["runs", "run_accounts", "run_event_ids"])
def test_a_batch_rolled_back_mid_flush_loses_no_change_when_retried(tmp_path: Path, table: str) -> None:
    """The marks of a failed batch go with its rollback (``clear()``); the retry reloads the rows
    from the database and applies the events again, so no change is lost, none applied twice."""
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(started_run()))
    with Projector(log, db) as projector:
        projector.catch_up()
        append(log, step("acct010", 2), step("acct011", 3, ok=False),
               line("account_finished", ts(4), run_id="big", account_id="acct011", status="FAILED",
                    error="step 1 click failed", attempt=1))
        planted_failure(db, table)
        with pytest.raises(sqlite3.DatabaseError, match="planted failure"):
            projector.catch_up()
        conn = sqlite3.connect(db)
        conn.execute("DROP TRIGGER planted")
        conn.commit()
        conn.close()
        assert projector.catch_up().applied == 3
        append(log, step("acct010", 5))
        assert projector.catch_up().applied == 1
    assert_equals_one_replay(log, db, tmp_path)
