"""The projector: tables from the log, checkpointed, pure, and refusing a log that changed under it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from projection_support import REPO, dump, line, rows, run_lines, start_follower, synthetic_log, ts, warmup

from warmup.errors import WarmupError
from warmup.projections.core.schema import PROJECTION_VERSION
from warmup.projector.projector import Projector, StrictStop
from warmup.projector.replay import replay


def project(log: Path, db: Path, **kwargs: object) -> tuple[int, int]:
    with Projector(log, db, **kwargs) as p:  # type: ignore[arg-type]
        result = p.catch_up()
    return result.applied, result.rejected


# -- what the tables say ---------------------------------------------------------------------------
def test_a_run_projects_into_every_table(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(run_lines("r1", ["alice", "bob", "carol"], {"carol": "FAILED"})))
    assert project(log, db) == (3 * 4 + 2, 0)

    (run,) = rows(db, "SELECT * FROM runs")
    assert run["status"] == "FAILED", "a run is COMPLETED only when every account completed"
    assert (run["accounts_total"], run["accounts_completed"], run["accounts_failed"]) == (3, 2, 1)
    assert run["started_at"] == ts(1) and run["completed_at"] == ts(14) and run["task_id"] == "morning"

    by_account = {r["account_id"]: r for r in rows(db, "SELECT * FROM run_accounts")}
    assert {a: r["status"] for a, r in by_account.items()} == {"alice": "COMPLETED", "bob": "COMPLETED",
                                                               "carol": "FAILED"}
    carol = by_account["carol"]
    assert (carol["steps_ok"], carol["steps_failed"], carol["attempts"]) == (1, 1, 1)
    assert carol["error"] == "step 1 click failed" and "no #go on the page" in carol["log"]
    assert carol["started_at"] < carol["completed_at"]

    accounts = {r["id"]: r for r in rows(db, "SELECT * FROM accounts")}
    assert accounts["alice"]["warm_count"] == 1
    assert accounts["alice"]["warmed_at"] == by_account["alice"]["completed_at"]
    assert accounts["carol"]["warm_count"] == 0 and accounts["carol"]["fail_count"] == 1
    assert accounts["carol"]["last_error"] == "step 1 click failed" and accounts["carol"]["warmed_at"] is None

    (task,) = rows(db, "SELECT * FROM tasks")
    assert (task["id"], task["runs_count"], task["last_run_id"], task["last_status"]) == ("morning", 1, "r1", "FAILED")
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_a_run_where_every_account_completed_is_completed_and_counts_add_up(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(run_lines("r1", ["alice"], {}) + run_lines("r2", ["alice", "bob"], {"bob": "FAILED"})))
    project(log, db)
    assert [r["status"] for r in rows(db, "SELECT status FROM runs ORDER BY id")] == ["COMPLETED", "FAILED"]
    alice = rows(db, "SELECT * FROM accounts WHERE id = 'alice'")[0]
    assert (alice["warm_count"], alice["runs_count"], alice["last_run_id"]) == (2, 2, "r2")
    (task,) = rows(db, "SELECT * FROM tasks")
    assert (task["runs_count"], task["last_run_id"], task["last_status"]) == (2, "r2", "FAILED")


def test_retries_keep_the_account_running_until_its_last_attempt(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    common = {"run_id": "r1", "account_id": "alice"}
    log.write_bytes(b"".join([
        line("run_started", ts(1), run_id="r1", task_id="t", task_name="T", accounts=["alice"], steps=1,
             concurrency=1, host="h", pid=1),
        line("account_started", ts(2), attempt=1, **common),
        line("account_finished", ts(3), status="FAILED", error="flaky", attempt=1, retrying=True, **common),
    ]))
    project(log, db)
    (ra,) = rows(db, "SELECT * FROM run_accounts")
    assert (ra["status"], ra["attempts"], ra["error"]) == ("RUNNING", 1, "flaky")
    with open(log, "ab") as f:
        f.write(line("account_started", ts(4), attempt=2, **common))
        f.write(line("account_finished", ts(5), status="COMPLETED", error=None, attempt=2, **common))
        f.write(line("run_finished", ts(6), run_id="r1", status="COMPLETED"))
    project(log, db)
    (ra,) = rows(db, "SELECT * FROM run_accounts")
    assert (ra["status"], ra["attempts"], ra["error"], ra["started_at"]) == ("COMPLETED", 2, None, ts(2))
    assert rows(db, "SELECT fail_count, warm_count FROM accounts") == [{"fail_count": 0, "warm_count": 1}]
    assert rows(db, "SELECT status FROM runs") == [{"status": "COMPLETED"}]


def test_artifacts_are_recorded(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    lines = run_lines("r1", ["alice"], {"alice": "FAILED"})
    lines.insert(-2, line("artifact_saved", ts(50), run_id="r1", account_id="alice", path="r1/alice/failure-1.png",
                          sha256="ab" * 32, bytes=1234, kind="failure", attempt=1))
    log.write_bytes(b"".join(lines))
    project(log, db)
    assert rows(db, "SELECT path, kind, bytes, account_id FROM artifacts") == [
        {"path": "r1/alice/failure-1.png", "kind": "failure", "bytes": 1234, "account_id": "alice"}]


# -- bad lines -------------------------------------------------------------------------------------
def test_bad_lines_are_recorded_and_skipped_and_later_lines_applied(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    good = run_lines("r1", ["alice"], {})
    bad = [
        b"this is not json\n",
        b'{"v": 1, "id": "x1", "type": "coffee_break", "ts": "2026-11-29T07:00:00.000000Z", "run_id": "r1"}\n',
        b'{"v": 1, "id": "x2", "type": "account_started", "ts": "2026-11-29T07:00:00.000000Z", "run_id": "r1"}\n',
        b'{"v": 7, "id": "x3", "type": "run_finished", "ts": "t", "run_id": "r1", "status": "FAILED"}\n',
        line("account_started", ts(9), run_id="nope", account_id="alice", attempt=1),
        b"\n",
        line("run_finished", ts(10), run_id="r1", status="FAILED").replace(ts(10).encode(), b"x" * 27),
        line("run_finished", ts(10), run_id="r1", status="FAILED").replace(ts(10).encode(),
                                                                           b"2026-11-29T07:99:99.000010Z"),
        line("run_finished", ts(10), run_id="r1", status="FAILED").replace(
            ts(10).encode(), "2026-11-29T07:00:0\u0663.000010Z".encode()),
        b'{"v": 1, "id": "x4", "type": "run_started", "ts": "2026-11-29T07:00:00.000000Z", "run_id": "r7",'
        b' "task_id": "t", "task_name": "T", "accounts": ["a"], "steps": 1, "concurrency": 1, "host": "h",'
        b' "pid": 99999999999999999999}\n',
    ]
    log.write_bytes(good[0] + b"".join(bad) + b"".join(good[1:]))
    assert project(log, db) == (len(good), len(bad))
    rejected = rows(db, 'SELECT "position", reason, line FROM rejected_events ORDER BY "position"')
    assert [r["position"] for r in rejected] == [len(good[0]) + sum(map(len, bad[:i])) for i in range(len(bad))]
    reasons = " | ".join(r["reason"] for r in rejected)
    for needle in ("not valid JSON", "unknown event type", "account_id", "unknown schema version 7", "unknown run",
                   "is not a time like", "$.pid"):
        assert needle in reasons
    assert rejected[0]["line"] == "this is not json"
    assert rows(db, "SELECT status FROM runs") == [{"status": "COMPLETED"}]
    assert rows(db, "SELECT events_applied, events_rejected FROM warmup_checkpoints") == [
        {"events_applied": len(good), "events_rejected": len(bad)}]


def test_a_very_long_bad_line_is_cut_in_rejected_events(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"x" * 100_000 + b"\n")
    project(log, db)
    (r,) = rows(db, "SELECT line FROM rejected_events")
    assert len(r["line"]) == 1000


def test_strict_stops_at_the_first_bad_line_with_exit_1(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    good = run_lines("r1", ["alice"], {})
    log.write_bytes(good[0] + b"garbage\n" + b"".join(good[1:]))
    with pytest.raises(StrictStop, match=f"invalid line at byte {len(good[0])}"):
        project(log, db, strict=True)
    assert rows(db, 'SELECT "position", events_applied FROM warmup_checkpoints') == [
        {"position": len(good[0]), "events_applied": 1}]
    result = warmup("project", "--log", log, "--db", db, "--strict")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "invalid line at byte" in result.stderr
    assert "Traceback" not in result.stderr
    assert rows(db, "SELECT COUNT(*) AS n FROM rejected_events") == [{"n": 0}]
    assert warmup("project", "--log", log, "--db", db).returncode == 0  # without --strict it records and goes on
    assert rows(db, "SELECT COUNT(*) AS n FROM rejected_events") == [{"n": 1}]


def crafted_lines() -> dict[str, bytes]:
    """Lines that once crashed every reader, each a valid event apart from one thing."""
    good = line("step_finished", ts(3), run_id="r1", account_id="alice", index=0, action="goto", ok=True,
                duration_ms=1.0, error=None)

    def extra(value: bytes) -> bytes:
        return good[:-2] + b',"extra":' + value + b"}\n"

    return {
        "invalid UTF-8 in a field": good.replace(b'"goto"', b'"go\xff\xfeto"'),
        "invalid UTF-8 in an unknown field": extra(b'"a\xed\xa0\x80b"'),
        "invalid UTF-8 in a key": extra(b'{"k\xc3":1}').replace(b'"extra"', b'"ex\x80"'),
        "1000 nested lists in an unknown field": extra(b"[" * 1000 + b"]" * 1000),
        "990 nested objects in an unknown field": extra(b'{"a":' * 990 + b"1" + b"}" * 990),
        "5000 nested lists": extra(b"[" * 5000 + b"]" * 5000),
        "250 nested lists (with the event, 251)": extra(b"[" * 250 + b"]" * 250),
    }


@pytest.mark.parametrize("what", list(crafted_lines()))
def test_a_crafted_line_is_rejected_by_every_reader_and_nothing_stops(tmp_path: Path, what: str) -> None:
    from warmup.events.envelope import EventDecoder, InvalidEvent, decode, validate
    from warmup.recover import scan_run

    bad = crafted_lines()[what]
    good = run_lines("r1", ["alice"], {})
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(good[0] + bad + b"".join(good[1:]))
    for reader in (EventDecoder(), EventDecoder.slow, decode):
        with pytest.raises(InvalidEvent):
            reader(bad[:-1])
    with pytest.raises(InvalidEvent):
        validate({"v": 1, "id": "x", "type": "run_finished", "ts": ts(1), "run_id": "r1", "status": "FAILED",
                  "extra": json.loads("[" * 250 + "]" * 250)})

    result = warmup("project", "--log", log, "--db", db)
    assert result.returncode == 0, result.stderr
    assert rows(db, 'SELECT "position" FROM rejected_events') == [{"position": len(good[0])}]
    assert rows(db, "SELECT status, steps_ok FROM run_accounts") == [{"status": "COMPLETED", "steps_ok": 2}]
    replayed = tmp_path / "replayed.db"
    assert warmup("replay", "--log", log, "--db", replayed).returncode == 0
    assert dump(replayed) == dump(db)
    strict = warmup("project", "--strict", "--log", log, "--db", tmp_path / "strict.db")
    assert strict.returncode == 1 and strict.stderr.count("\n") == 1
    assert f"invalid line at byte {len(good[0])}" in strict.stderr and "Traceback" not in strict.stderr
    for args in (["-n", "all"], ["-n", "all", "--json"], ["--type", "step_finished", "-n", "all"]):
        # bytes, not text: --json prints the log's lines exactly, invalid UTF-8 included
        tail = subprocess.run([sys.executable, "-m", "cli", "tail", "--log", str(log), *args],
                              cwd=REPO, capture_output=True, timeout=60)
        assert tail.returncode == 0 and b"Traceback" not in tail.stderr, tail.stderr
    assert "run_finished" in warmup("tail", "--log", log, "-n", "1").stdout
    report = warmup("report", "r1", "--log", log, "--db", db, "-o", tmp_path / "r.html")
    assert report.returncode == 0, report.stderr
    assert "1 line(s) of it not readable, skipped" in (tmp_path / "r.html").read_text()
    state = scan_run(log, "r1")
    assert state.finished is not None and state.accounts["alice"].status == "COMPLETED"
    assert warmup("recover", "--log", log).returncode == 0


# -- duplicates ------------------------------------------------------------------------------------
def test_a_repeated_step_is_applied_once(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    lines = run_lines("r1", ["alice"], {})
    step = lines[2]
    log.write_bytes(b"".join(lines[:3]) + step + step + b"".join(lines[3:]))
    assert project(log, db) == (len(lines), 2)
    assert rows(db, "SELECT steps_ok, steps_failed FROM run_accounts") == [{"steps_ok": 2, "steps_failed": 0}]
    reasons = rows(db, "SELECT reason FROM rejected_events")
    assert len(reasons) == 2 and all("duplicate event id" in r["reason"] for r in reasons)


def test_every_line_of_a_run_repeated_changes_nothing_in_any_increment(tmp_path: Path) -> None:
    log, clean_db = tmp_path / "clean.jsonl", tmp_path / "clean.db"
    lines = run_lines("r1", ["alice", "bob"], {"bob": "FAILED"})
    lines.insert(-2, line("artifact_saved", ts(40), run_id="r1", account_id="bob", path="r1/bob/failure-1.png",
                          sha256="ab" * 32, bytes=10, kind="failure", attempt=1))
    log.write_bytes(b"".join(lines))
    project(log, clean_db)
    # each line right after itself, then the whole run again: every type, in flight and after the run ended
    doubled = [x for one in lines for x in (one, one)] + lines
    dup_log = tmp_path / "events.jsonl"
    dup_log.write_bytes(b"".join(doubled))
    by_replay = tmp_path / "replay.db"
    replay(dup_log, by_replay)
    for batch_bytes in (1, 700, 1 << 20):  # one event a transaction, a few, all at once
        db = tmp_path / f"dup-{batch_bytes}.db"
        assert project(dup_log, db, batch_bytes=batch_bytes) == (len(lines), 2 * len(lines))
        assert dump(db)["runs"] == dump(clean_db)["runs"]
        assert dump(db)["run_accounts"] == dump(clean_db)["run_accounts"]
        assert dump(db)["artifacts"] == dump(clean_db)["artifacts"]
        assert {k: v for k, v in dump(db).items() if k != "warmup_checkpoints"} == {
            k: v for k, v in dump(by_replay).items() if k != "warmup_checkpoints"}
        reasons = [r["reason"] for r in rows(db, 'SELECT reason FROM rejected_events ORDER BY "position"')]
        # each line again while its run is in flight: a duplicate; once run_finished applied, the run
        # takes no more events (its own copy included)
        assert all("duplicate event id" in r for r in reasons[:len(lines) - 1]), reasons
        assert all("already finished" in r for r in reasons[len(lines) - 1:]), reasons
        assert rows(db, "SELECT COUNT(*) AS n FROM run_event_ids") == [{"n": 0}]  # (kept for runs in flight)


def test_a_duplicate_is_caught_by_a_later_process_and_in_a_finished_run(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    r1 = run_lines("r1", ["alice"], {})
    r2 = run_lines("r2", ["alice"], {}, task_id="evening")
    log.write_bytes(b"".join(r1) + b"".join(r2[:3]))  # r2 still in flight
    project(log, db)
    with open(log, "ab") as f:
        f.write(r2[2] + r1[2] + r2[1] + b"".join(r2[3:]))  # a step of each run again, an account_started again
    assert warmup("project", "--log", log, "--db", db).returncode == 0
    assert rows(db, "SELECT run_id, steps_ok, attempts FROM run_accounts ORDER BY run_id") == [
        {"run_id": "r1", "steps_ok": 2, "attempts": 1}, {"run_id": "r2", "steps_ok": 2, "attempts": 1}]
    reasons = [r["reason"] for r in rows(db, 'SELECT reason FROM rejected_events ORDER BY "position"')]
    assert ["duplicate event id" in r for r in reasons] == [True, False, True]
    assert "run 'r1' already finished (COMPLETED)" in reasons[1]  # a finished run takes no more events
    replayed = tmp_path / "replayed.db"
    replay(log, replayed)
    assert {k: v for k, v in dump(db).items() if k != "warmup_checkpoints"} == {
        k: v for k, v in dump(replayed).items() if k != "warmup_checkpoints"}


@pytest.mark.parametrize("ids", [
    [], ["0" * 32], ["0123456789abcdef" * 2, "f" * 32], ["ABCDEF0123456789" * 2], ["0" * 31, "0" * 33],
    ["00 11 22 33 44 55 66 77 88 99 aa"[:32]], ["x1", "", "é", "a\nb"], ["0" * 32, "0" * 32 + " "],
])
def test_stored_event_ids_read_back_exactly(ids: list[str]) -> None:
    from warmup.projections.core.rows import pack_ids, unpack_ids

    assert list(unpack_ids(pack_ids(dict.fromkeys(ids)))) == list(dict.fromkeys(ids))


def test_an_artifact_row_is_never_replaced(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    lines = run_lines("r1", ["alice", "bob"], {})
    first = line("artifact_saved", ts(40), run_id="r1", account_id="alice", path="r1/shot.png", sha256="aa" * 32,
                 bytes=1, kind="screenshot", attempt=1)
    second = line("artifact_saved", ts(41), run_id="r1", account_id="bob", path="r1/shot.png", sha256="bb" * 32,
                  bytes=2, kind="screenshot", attempt=1)
    log.write_bytes(b"".join(lines[:-1]) + first + second + lines[-1])
    assert project(log, db) == (len(lines) + 1, 1)
    assert rows(db, "SELECT path, account_id, sha256 FROM artifacts") == [
        {"path": "r1/shot.png", "account_id": "alice", "sha256": "aa" * 32}]
    (reason,) = rows(db, "SELECT reason FROM rejected_events")
    assert "already recorded" in reason["reason"]
    # in another batch, another process: the same answer
    log.write_bytes(b"".join(lines[:-1]) + first)
    db2 = tmp_path / "later.db"
    project(log, db2)
    with open(log, "ab") as f:
        f.write(second + lines[-1])
    project(log, db2)
    assert dump(db2) == dump(db)


@pytest.mark.parametrize(("duration_ms", "accepted"), [
    (0.0, True), (3_600_000.0, True), (3_600_000.0 + 9_000.0, True),  # the run had 9 s before this step ended
    (-0.5, False), (3_600_000.0 + 9_001.0, False), (1e18, False),
])
def test_a_step_longer_than_its_run_could_be_is_rejected(tmp_path: Path, duration_ms: float,
                                                          accepted: bool) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    lines = run_lines("r1", ["alice"], {})  # run_started at ts(1); the step below ends at ts(10)
    step = line("step_finished", ts(10), run_id="r1", account_id="alice", index=1, action="wait_ms", ok=True,
                duration_ms=duration_ms, error=None)
    log.write_bytes(b"".join(lines[:3]) + step + b"".join(lines[3:]))
    assert project(log, db) == (len(lines) + accepted, 1 - accepted)
    assert rows(db, "SELECT steps_ok FROM run_accounts") == [{"steps_ok": 2 + accepted}]
    if not accepted:
        (reason,) = rows(db, "SELECT reason FROM rejected_events")
        assert "duration_ms" in reason["reason"]


# -- torn lines, checkpoints, purity --------------------------------------------------------------
def test_a_torn_last_line_is_neither_applied_nor_lost(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    lines = run_lines("r1", ["alice"], {})
    last = lines[-1]
    log.write_bytes(b"".join(lines[:-1]) + last[:20])
    assert project(log, db) == (len(lines) - 1, 0)
    assert rows(db, "SELECT status FROM runs") == [{"status": "RUNNING"}]
    with open(log, "ab") as f:
        f.write(last[20:])
    assert project(log, db) == (1, 0)
    assert rows(db, "SELECT status FROM runs") == [{"status": "COMPLETED"}]
    assert rows(db, "SELECT COUNT(*) AS n FROM rejected_events") == [{"n": 0}]


RUN_IDS = ("r1", "r2")
ACCOUNT_IDS = ("a1", "a2", "a3")


@st.composite
def event_lines(draw: st.DrawFn) -> list[bytes]:
    """Random event sequences over a small world: valid runs, events out of order, duplicates, garbage."""
    out: list[bytes] = []
    for n in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["run_started", "account_started", "step_finished", "artifact_saved",
                                     "account_finished", "run_finished", "garbage", "bad_ts", "again",
                                     "long_step"]))
        run_id, account_id = draw(st.sampled_from(RUN_IDS)), draw(st.sampled_from(ACCOUNT_IDS))
        at = ts(n)
        if kind == "again":  # a line seen before, its id included
            out.extend([draw(st.sampled_from(out))] if out else [])
        elif kind == "long_step":  # a duration the run may or may not have had time for
            out.append(line("step_finished", at, run_id=run_id, account_id=account_id, index=0, action="wait",
                            ok=True, error=None, duration_ms=draw(st.sampled_from(
                                [-1.0, 3_600_000.0, 3_600_001.0, 3_600_000.0 + n * 1000.0, 1e18]))))
        elif kind == "garbage":
            out.append(draw(st.binary(max_size=30)).replace(b"\n", b"") + b"\n")
        elif kind == "bad_ts":  # the decoder checks ts's length only; handlers check its shape
            ok = draw(st.booleans())
            good = line("step_finished", at, run_id=run_id, account_id=account_id, index=0, action="goto", ok=ok,
                        duration_ms=1.0, error=None if ok else "boom")
            out.append(good.replace(at.encode(), b"2026-11-29 07:00:00.000000Z"))
        elif kind == "run_started":
            accounts = draw(st.lists(st.sampled_from(ACCOUNT_IDS), min_size=1, max_size=3, unique=True))
            out.append(line(kind, at, run_id=run_id, task_id=draw(st.sampled_from(["t1", "t2"])), task_name="T",
                            accounts=accounts, steps=2, concurrency=2, host="h", pid=1))
        elif kind == "account_started":
            out.append(line(kind, at, run_id=run_id, account_id=account_id, attempt=draw(st.integers(1, 3))))
        elif kind == "step_finished":
            ok = draw(st.booleans())
            out.append(line(kind, at, run_id=run_id, account_id=account_id, index=draw(st.integers(0, 3)),
                            action="goto", ok=ok, duration_ms=1.0, error=None if ok else "boom"))
        elif kind == "artifact_saved":  # (paths may repeat: the first one recorded stays)
            out.append(line(kind, at, run_id=run_id, account_id=account_id, path=f"{run_id}/{n % 4}.png",
                            sha256="0" * 64, bytes=n, kind="screenshot"))
        elif kind == "account_finished":
            status = draw(st.sampled_from(["COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED", "WEIRD"]))
            out.append(line(kind, at, run_id=run_id, account_id=account_id, status=status, error="e",
                            attempt=draw(st.integers(0, 3)), retrying=draw(st.booleans())))
        else:
            out.append(line(kind, at, run_id=run_id, status=draw(st.sampled_from(["COMPLETED", "FAILED",
                                                                                  "INTERRUPTED"]))))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=event_lines(), data=st.data())
def test_projecting_in_any_increments_equals_one_full_replay(tmp_path_factory: pytest.TempPathFactory,
                                                            lines: list[bytes], data: st.DataObject) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    log, incremental, full = tmp / "events.jsonl", tmp / "incremental.db", tmp / "full.db"
    blob = b"".join(lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(blob)), max_size=8), label="cuts"))
    batch_bytes = data.draw(st.sampled_from([1, 64, 300, 1 << 20]), label="batch_bytes")
    log.write_bytes(b"")
    written = 0
    for cut in [*cuts, len(blob)]:
        with open(log, "ab") as f:
            f.write(blob[written:cut])
        written = max(written, cut)
        project(log, incremental, batch_bytes=batch_bytes)
    replay(log, full)
    assert dump(incremental) == dump(full)


def test_a_log_truncated_or_replaced_under_the_checkpoint_is_refused(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    lines = run_lines("r1", ["alice", "bob"], {})
    log.write_bytes(b"".join(lines))
    project(log, db)

    log.write_bytes(b"".join(lines[:3]))  # truncated
    result = warmup("project", "--log", log, "--db", db)
    assert result.returncode == 1 and "shorter" in result.stderr and "warmup replay" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr

    other = run_lines("r9", ["zed", "yan", "xi"], {})  # another log, longer than the checkpoint
    log.write_bytes(b"".join(other))
    result = warmup("project", "--log", log, "--db", db)
    assert result.returncode == 1 and "not the one the database was built from" in result.stderr
    assert "warmup replay" in result.stderr

    result = warmup("replay", "--log", log, "--db", db)
    assert result.returncode == 0, result.stderr
    assert [r["id"] for r in rows(db, "SELECT id FROM runs")] == ["r9"]
    assert warmup("project", "--log", log, "--db", db).returncode == 0


def test_replay_swaps_atomically_and_a_reader_of_the_old_file_keeps_its_view(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(run_lines("r1", ["alice"], {})))
    project(log, db)
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")  # a reader in the middle of a read transaction...
    before = reader.execute("SELECT COUNT(*) FROM runs").fetchone()
    with open(log, "ab") as f:
        f.write(b"".join(run_lines("r2", ["bob"], {})))
    replay(log, db)  # ...is not waited for, and never sees a half-built database:
    assert reader.execute("SELECT COUNT(*) FROM runs").fetchone() == before  # its snapshot, whole
    reader.execute("COMMIT")
    assert reader.execute("SELECT COUNT(*) FROM runs").fetchone() == (2,)  # then the new tables
    reader.close()
    assert len(rows(db, "SELECT id FROM runs")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl", "warmup.db"]  # no leftovers
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_a_database_of_another_projection_version_is_rebuilt_by_replay(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(run_lines("r1", ["alice"], {})))
    project(log, db)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE warmup_checkpoints SET version = 0")
    conn.execute("DELETE FROM runs")
    conn.commit()
    conn.close()
    result = warmup("project", "--log", log, "--db", db)
    assert result.returncode == 0, result.stderr
    assert "projection version 0" in result.stderr and "rebuilding" in result.stderr
    assert rows(db, "SELECT version FROM warmup_checkpoints") == [
        {"version": PROJECTION_VERSION}]
    assert rows(db, "SELECT id FROM runs") == [{"id": "r1"}]


def test_a_foreign_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"")
    result = warmup("project", "--log", log, "--db", db)
    assert result.returncode == 2 and "not a warmup database" in result.stderr


def test_the_projector_refuses_to_run_inside_an_event_loop(tmp_path: Path) -> None:
    async def inside() -> None:
        Projector(tmp_path / "e.jsonl", tmp_path / "w.db")

    with pytest.raises(WarmupError, match="must not run inside an asyncio event loop"):
        asyncio.run(inside())


# -- processes -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_log(tmp_path_factory.mktemp("big"), 300_000, seed=7)


# kill -9 of `warmup project` mid-log, many times: tests/test_faults_projector.py


@pytest.mark.slow
def test_two_projectors_at_once_end_with_the_tables_of_one_replay(big_log: Path, tmp_path: Path) -> None:
    db, reference = tmp_path / "warmup.db", tmp_path / "reference.db"
    cmd = [sys.executable, "-m", "cli", "project", "--log", str(big_log), "--db", str(db)]
    procs = [subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    replay(big_log, reference)
    assert dump(db) == dump(reference)


def test_follow_applies_new_lines_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    lines = run_lines("r1", ["alice", "bob"], {"bob": "FAILED"})
    proc = start_follower(log, db)
    try:
        time.sleep(0.5)  # the log does not exist yet: it is waited for
        with open(log, "ab") as f:
            f.write(b"".join(lines[:4]))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if rows(db, "SELECT COUNT(*) AS n FROM run_accounts WHERE status = 'RUNNING'")[0]["n"]:
                    break
            except sqlite3.OperationalError:  # not created yet
                pass
            time.sleep(0.05)
        else:
            pytest.fail("the follower did not apply the first lines")
        with open(log, "ab") as f:
            f.write(b"".join(lines[4:]))
        proc.send_signal(signal.SIGTERM)  # right after the append: it must still apply it before exiting
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    assert "Traceback" not in proc.stderr.read()
    assert rows(db, "SELECT status FROM runs") == [{"status": "FAILED"}]


def test_cli_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    result = warmup("project", "--log", tmp_path / "missing.jsonl", "--db", tmp_path / "w.db")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no event log at" in result.stderr
    result = warmup("status", "--db", tmp_path / "missing.db")
    assert result.returncode == 2 and "no database at" in result.stderr and "warmup project" in result.stderr
    result = warmup("project", "--bogus")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--bogus" in result.stderr


def test_log_and_db_default_to_env_then_warmup_data(tmp_path: Path) -> None:
    (tmp_path / "warmup-data").mkdir()
    (tmp_path / "warmup-data" / "events.jsonl").write_bytes(b"".join(run_lines("r1", ["alice"], {})))
    env = {**os.environ, "WARMUP_LOG": "", "WARMUP_DB": ""}
    env.pop("WARMUP_LOG")
    env.pop("WARMUP_DB")
    assert warmup("project", cwd=tmp_path, env=env).returncode == 0
    assert (tmp_path / "warmup-data" / "warmup.db").is_file()
    env2 = {**env, "WARMUP_LOG": str(tmp_path / "warmup-data" / "events.jsonl"), "WARMUP_DB": str(tmp_path / "x.db")}
    assert warmup("project", env=env2).returncode == 0
    assert rows(tmp_path / "x.db", "SELECT id FROM runs") == [{"id": "r1"}]


def test_status_prints_tables_and_json(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(run_lines("r1", ["alice", "bob"], {"bob": "FAILED"})))
    project(log, db)
    result = warmup("status", "--db", db)
    assert result.returncode == 0
    assert "Recent runs" in result.stdout and "r1" in result.stdout and "FAILED" in result.stdout
    assert "alice" in result.stdout and "step 1 click failed" in result.stdout
    data = json.loads(warmup("status", "--db", db, "--json").stdout)
    assert data["runs"][0]["id"] == "r1" and data["runs"][0]["accounts_failed"] == 1
    assert {a["id"]: a["warm_count"] for a in data["accounts"]} == {"alice": 1, "bob": 0}
    assert data["checkpoint"]["events_applied"] == 2 * 4 + 2


def test_follow_waits_for_a_removed_log_and_refuses_another_in_its_place(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(run_lines("r1", ["alice"], {})))
    proc = start_follower(log, db)
    said: list[str] = []
    try:
        said.append(until_said(proc, "following"))  # it has the log open: no clock decides when
        log.unlink()  # rotated away
        said.append(until_said(proc, "is gone; waiting"))
        assert proc.poll() is None, "the follower must wait for the log, not die"
        log.write_bytes(b"".join(run_lines("r9", ["zed", "yan"], {})))  # another log in its place
        assert proc.wait(timeout=60) == 1
    finally:
        proc.kill()
    err = "".join(said) + proc.stderr.read()
    assert "is gone; waiting" in err and "warmup replay" in err and "Traceback" not in err


def until_said(proc: subprocess.Popen[str], text: str) -> str:
    """Read ``proc``'s stderr up to the line containing ``text``; return what was read."""
    assert proc.stderr is not None
    read = []
    for said in proc.stderr:
        read.append(said)
        if text in said:
            return "".join(read)
    raise AssertionError(f"the process ended without saying {text!r}: {''.join(read)}")


def test_replay_never_overwrites_a_foreign_database_or_a_non_database(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(run_lines("r1", ["alice"], {})))
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, not a database\n")
    for target, message in ((other, "not a warmup database"), (notes, "not a SQLite database")):
        before = target.read_bytes()
        result = warmup("replay", "--log", log, "--db", target)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
        assert target.read_bytes() == before
    replay(str(log), str(tmp_path / "fine.db"))  # str paths are fine too


def test_a_follower_stops_when_a_scoped_replay_lands_under_it(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(run_lines("r1", ["alice"], {})))
    proc = start_follower(log, db)
    said = ""
    try:
        said = until_said(proc, "following")  # it has the database open: the replay lands under it
        assert warmup("replay", "--log", log, "--db", db, "--until", "2000-01-01", "--force").returncode == 0
        with open(log, "ab") as f:
            f.write(b"".join(run_lines("r2", ["bob"], {})))
        assert proc.wait(timeout=20) == 1
    finally:
        proc.kill()
    assert "cannot be extended" in said + proc.stderr.read()
    assert rows(db, "SELECT COUNT(*) AS n FROM runs") == [{"n": 0}]  # the picture of 2000 stays one


def test_replay_onto_a_removed_database_ignores_the_wal_it_left(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(run_lines("r1", ["alice"], {})))
    project(log, db)
    holder = sqlite3.connect(db, isolation_level=None)  # keeps the -wal alive, as a killed projector would
    holder.execute("PRAGMA wal_autocheckpoint=0")
    holder.execute("INSERT INTO tasks (id, name, runs_count) VALUES ('stale', 'from the old file', 1)")
    wal = Path(f"{db}-wal")
    assert wal.stat().st_size > 0
    saved = wal.read_bytes()
    holder.close()
    db.unlink()
    wal.write_bytes(saved)  # the old database's pages, beside no database
    with open(log, "ab") as f:
        f.write(b"".join(run_lines("r2", ["bob"], {})))
    replay(log, db)
    replay(log, tmp_path / "fresh.db")
    assert dump(db) == dump(tmp_path / "fresh.db")
    assert rows(db, "PRAGMA journal_mode") == [{"journal_mode": "wal"}]


def test_replay_says_so_when_another_writer_holds_the_database_too_long(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(run_lines("r1", ["alice"], {})))
    project(log, db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = warmup("replay", "--log", log, "--db", db, env={**os.environ, "WARMUP_LOCK_WAIT_S": "1"}, timeout=60)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 1 and "stayed locked by another process" in result.stderr
    assert "Traceback" not in result.stderr
