"""Past runs: `warmup runs`, `warmup show`, and point-in-time / per-run replays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from projection_support import dump, line, rows, run_lines, warmup

from warmup.events.envelope import decode
from warmup.events.reader import read_lines
from warmup.projector.projector import Projector
from warmup.projector.replay import replay


@pytest.fixture()
def history(tmp_path: Path) -> tuple[Path, Path]:
    """Three runs of two tasks (the third still running), projected."""
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    lines = run_lines("r1", ["alice", "bob"], {}, task_id="morning")
    lines += [x.replace(b"2026-11-29T07:", b"2026-11-29T08:") for x in
              run_lines("r2", ["alice", "bob"], {"bob": "FAILED"}, task_id="evening")]
    third = [x.replace(b"2026-11-29T07:", b"2026-11-29T09:") for x in
             run_lines("r3", ["carol"], {}, task_id="morning")]
    lines += third[:2]
    lines.insert(3, line("artifact_saved", "2026-11-29T07:00:03.500000Z", run_id="r1", account_id="alice",
                         path="r1/alice/shot.png", sha256="0" * 64, bytes=10, kind="screenshot"))
    log.write_bytes(b"".join(lines))
    assert warmup("project", "--log", log, "--db", db).returncode == 0
    return log, db


def test_runs_lists_newest_first_with_filters_and_json(history: tuple[Path, Path]) -> None:
    _, db = history
    data = json.loads(warmup("runs", "--db", db, "--json").stdout)
    assert [r["id"] for r in data] == ["r3", "r2", "r1"]
    r1 = data[2]
    assert set(r1) >= {"id", "task_id", "task_name", "status", "started_at", "completed_at", "duration_s",
                       "accounts_total", "accounts_completed", "accounts_failed", "accounts_cancelled",
                       "accounts_interrupted"}
    assert (r1["status"], r1["accounts_total"], r1["accounts_completed"]) == ("COMPLETED", 2, 2)
    assert r1["duration_s"] == 9.0  # 07:00:01.000001 to 07:00:10.000010
    assert data[0]["status"] == "RUNNING" and data[0]["duration_s"] is None

    def ids(*args: str) -> list[str]:
        return [r["id"] for r in json.loads(warmup("runs", "--db", db, "--json", *args).stdout)]

    assert ids("--task", "morning") == ["r3", "r1"]
    assert ids("--status", "failed") == ["r2"]
    assert ids("--since", "2026-11-29T08:00:00Z") == ["r3", "r2"]
    assert ids("--limit", "1") == ["r3"]
    table = warmup("runs", "--db", db)
    assert table.returncode == 0 and "r2" in table.stdout and "evening" in table.stdout
    for bad_time in ("yesterday-ish", "99999999999d", "0001-01-01T00:00:00+01:00"):
        bad = warmup("runs", "--db", db, "--since", bad_time)
        assert bad.returncode == 2 and "is not a time" in bad.stderr and "Traceback" not in bad.stderr
        bad = warmup("replay", "--db", db, "--until", bad_time)
        assert bad.returncode == 2 and "is not a time" in bad.stderr and "Traceback" not in bad.stderr
    assert ids("--since", "100000d") == ["r3", "r2", "r1"]  # an age


def test_show_gives_the_run_and_a_row_per_account_with_artifacts(history: tuple[Path, Path]) -> None:
    _, db = history
    data = json.loads(warmup("show", "r2", "--db", db, "--json").stdout)
    assert data["run"]["id"] == "r2" and data["run"]["status"] == "FAILED" and data["task"]["id"] == "evening"
    assert [a["account_id"] for a in data["accounts"]] == ["alice", "bob"]
    bob = data["accounts"][1]
    assert (bob["status"], bob["attempts"], bob["steps_ok"], bob["steps_failed"]) == ("FAILED", 1, 1, 1)
    assert bob["error"] == "step 1 click failed" and bob["duration_s"] > 0
    r1 = json.loads(warmup("show", "r1", "--db", db, "--json").stdout)
    assert r1["accounts"][0]["artifacts"][0]["path"] == "r1/alice/shot.png"
    text = warmup("show", "r2", "--db", db)
    assert text.returncode == 0 and "bob" in text.stdout and "step 1 click failed" in text.stdout
    missing = warmup("show", "nope", "--db", db)
    assert missing.returncode == 2 and "no run 'nope'" in missing.stderr and "warmup runs" in missing.stderr


def test_replay_until_equals_projecting_the_prefix_of_the_log(history: tuple[Path, Path], tmp_path: Path) -> None:
    log, _ = history
    lines = list(read_lines(log))
    for cut in (0, 3, 7, len(lines) // 2, len(lines) - 1, len(lines)):
        instant = decode(lines[cut - 1].data)["ts"] if cut else "2000-01-01T00:00:00Z"
        until_db, prefix_db, prefix_log = tmp_path / f"u{cut}.db", tmp_path / f"p{cut}.db", tmp_path / f"p{cut}.jsonl"
        result = warmup("replay", "--log", log, "--db", until_db, "--until", instant)
        assert result.returncode == 0, result.stderr
        prefix_log.write_bytes(b"".join(x.data + b"\n" for x in lines[:cut]))
        with Projector(prefix_log, prefix_db) as p:
            p.catch_up()
        a, b = dump(until_db), dump(prefix_db)
        for table in a:
            if table != "warmup_checkpoints":
                assert a[table] == b[table], (cut, table)
        (cp,) = rows(until_db, "SELECT events_applied, scope FROM warmup_checkpoints")
        assert cp["events_applied"] == cut and json.loads(cp["scope"])["until"]


def test_replay_of_chosen_runs_and_a_scoped_database_is_never_extended(history: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    log, _ = history
    db = tmp_path / "some.db"
    assert warmup("replay", "--log", log, "--db", db, "--run", "r1", "--run", "r3").returncode == 0
    assert [r["id"] for r in rows(db, "SELECT id FROM runs ORDER BY id")] == ["r1", "r3"]
    assert {r["run_id"] for r in rows(db, "SELECT run_id FROM run_accounts")} == {"r1", "r3"}
    refused = warmup("project", "--log", log, "--db", db)
    assert refused.returncode == 1 and "cannot be extended" in refused.stderr and "warmup replay" in refused.stderr
    replay(log, db)  # a full replay takes the database back
    assert len(rows(db, "SELECT id FROM runs")) == 3
    assert warmup("project", "--log", log, "--db", db).returncode == 0


HOSTILE = "[/] [bold red]boom\x1b]0;PWNED\x07\x1b[41mBAD\u202e"


def test_page_text_is_shown_as_text_never_as_markup_or_escape_sequences(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    lines = run_lines("r1", ["alice"], {"alice": "FAILED"})
    log.write_bytes(b"".join(lines).replace(b"step 1 click failed", json.dumps(HOSTILE)[1:-1].encode()))
    assert warmup("project", "--log", log, "--db", db).returncode == 0
    for args in (["status"], ["show", "r1"], ["runs"]):
        result = warmup(*args, "--db", db)
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout and "\u202e" not in result.stdout and "\x07" not in result.stdout
    shown = warmup("show", "r1", "--db", db).stdout
    assert "[/] [bold red]boom" in shown and "\\x1b]0;PWNED" in shown


def test_the_runner_progress_lines_escape_page_text() -> None:
    import io

    from warmup.runner.progress import LineProgress

    out = io.StringIO()
    progress = LineProgress(out)
    progress.account_done("alice", "FAILED", HOSTILE)
    progress.note(HOSTILE)
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue() and "\\x1b[41mBAD" in out.getvalue()


def _cells(table_text: str, first: str) -> list[list[str]]:
    """The cells of the table rows from the row whose first cell is ``first`` to the next account's."""
    out: list[list[str]] = []
    for row in table_text.splitlines():
        if not row.startswith("│"):
            continue
        cells = [c.strip() for c in row.strip("│").split("│")]
        if cells[0] == first or (out and cells[0] == ""):
            out.append(cells)
        elif out:
            break
    return out


def test_show_counts_optional_failures_apart_and_labels_each_attempt(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"

    def step(n: int, account: str, index: int, ok: bool, attempt: int, optional: bool = False) -> bytes:
        return line("step_finished", f"2026-11-29T07:00:{n:02d}.000000Z", run_id="r1", account_id=account,
                    index=index, action="click", ok=ok, duration_ms=5.0, attempt=attempt, optional=optional,
                    error=None if ok else f"step {index + 1} failed")

    lines = [
        line("run_started", "2026-11-29T07:00:00.000000Z", run_id="r1", task_id="t", task_name="T",
             accounts=["alice", "bob"], steps=3, concurrency=2, host="h", pid=1),
        line("account_started", "2026-11-29T07:00:01.000000Z", run_id="r1", account_id="alice", attempt=1),
        step(2, "alice", 0, True, 1), step(3, "alice", 1, False, 1, optional=True), step(4, "alice", 2, False, 1),
        line("artifact_saved", "2026-11-29T07:00:05.000000Z", run_id="r1", account_id="alice",
             path="r1/alice/failure-1.png", sha256="0" * 64, bytes=10, kind="failure", attempt=1),
        line("account_finished", "2026-11-29T07:00:06.000000Z", run_id="r1", account_id="alice", status="FAILED",
             error="step 3 failed", attempt=1, retrying=True),
        line("account_started", "2026-11-29T07:00:07.000000Z", run_id="r1", account_id="alice", attempt=2),
        step(8, "alice", 0, True, 2), step(9, "alice", 1, False, 2, optional=True), step(10, "alice", 2, True, 2),
        line("account_finished", "2026-11-29T07:00:11.000000Z", run_id="r1", account_id="alice", status="COMPLETED",
             error=None, attempt=2),
        line("account_started", "2026-11-29T07:00:12.000000Z", run_id="r1", account_id="bob", attempt=1),
        step(13, "bob", 0, True, 1), step(14, "bob", 1, False, 1, optional=True), step(15, "bob", 2, True, 1),
        line("account_finished", "2026-11-29T07:00:16.000000Z", run_id="r1", account_id="bob", status="COMPLETED",
             error=None, attempt=1),
        line("run_finished", "2026-11-29T07:00:17.000000Z", run_id="r1", status="COMPLETED"),
    ]
    log.write_bytes(b"".join(lines))
    assert warmup("project", "--log", log, "--db", db).returncode == 0
    data = json.loads(warmup("show", "r1", "--db", db, "--json").stdout)  # the log: the one the db was built from
    alice, bob = data["accounts"]
    assert (bob["status"], bob["steps_ok"], bob["steps_failed_optional"]) == ("COMPLETED", 2, 1)
    assert alice["steps_failed_optional"] == 2
    assert [(a["attempt"], a["steps_ok"], a["steps_failed"], a["steps_failed_optional"], a["status"], a["retried"])
            for a in alice["attempts_detail"]] == [(1, 1, 1, 1, "FAILED", True), (2, 2, 0, 1, "COMPLETED", False)]

    text = warmup("show", "r1", "--db", db).stdout
    header = next(r for r in text.splitlines() if r.startswith("┃"))
    assert [c.strip() for c in header.strip("┃").split("┃")][5:8] == ["ok", "failed", "optional"]
    (bob_row,) = _cells(text, "bob")
    assert bob_row[1] == "COMPLETED" and bob_row[5:8] == ["2", "0", "1"]  # no "failed 1" on a COMPLETED account
    alice_rows = _cells(text, "alice")
    assert [r[2] for r in alice_rows] == ["#1 FAILED, retried", "#2 COMPLETED"]
    assert [r[5:8] for r in alice_rows] == [["#1: 1", "#1: 1", "#1: 1"], ["#2: 2", "#2: 0", "#2: 1"]]
    assert alice_rows[0][9] == "#1 r1/alice/failure-1.png"
    assert "optional: optional steps that failed; their accounts went on" in text
    # without the log, the tables' counts are all there is: said, not guessed
    log.rename(tmp_path / "moved.jsonl")
    bare = warmup("show", "r1", "--db", db)
    assert _cells(bare.stdout, "bob")[0][5:8] == ["2", "1", "?"] and "pass --log" in bare.stdout
    moved = json.loads(warmup("show", "r1", "--db", db, "--log", tmp_path / "moved.jsonl", "--json").stdout)
    assert moved["accounts"][1]["steps_failed_optional"] == 1
