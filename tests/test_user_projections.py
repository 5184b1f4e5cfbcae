"""Projections of your own: exact, isolated, rebuilt when their version changes, never wiped by replay.

Real files, real SQLite, the CLI run as a user runs it (``--projection tests.user_projections:X``).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from conftest import Workdir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from projection_support import REPO, line, rows, run_lines, ts, warmup

from warmup.projection import SQLiteProjection, on
from warmup.projector.projector import Projector

WARM = "tests.user_projections:WarmCounts"
FACTS = "tests.user_projections:RunFactsSeen"
FAILS = "tests.user_projections:FailsOnBob"
ACCOUNTS = ["alice", "bob", "carol", "dave"]


def mixed_log(path: Path, runs: int = 6) -> list[bytes]:
    """Several runs of the same accounts with mixed outcomes, a duplicated account_finished line,
    an event of a run nobody started and a bad line among them."""
    out: list[bytes] = []
    for r in range(runs):
        outcomes = {a: ("FAILED" if (r + i) % 3 == 0 else "COMPLETED") for i, a in enumerate(ACCOUNTS)}
        out += run_lines(f"run-{r}", ACCOUNTS, outcomes, task_id=f"task-{r % 2}")
    finished = [x for x in out if b'"account_finished"' in x and b'"COMPLETED"' in x]
    out.insert(len(out) // 2, finished[0])  # a copied line: warmup rejects it
    out.insert(5, line("account_finished", ts(1), run_id="nobody", account_id="alice", status="COMPLETED",
                       error=None, attempt=1))
    out.insert(7, b'{"not": "an event"}\n')
    path.write_bytes(b"".join(out))
    return out


def recompute_warm(log: Path) -> dict[str, tuple[int, str]]:
    """WarmCounts computed the straightforward way: each run's COMPLETED accounts, once per run."""
    started: set[str] = set()
    seen: set[tuple[str, str]] = set()
    counts: Counter[str] = Counter()
    last: dict[str, str] = {}
    for raw in log.read_bytes().splitlines():
        event = orjson.loads(raw)
        if event.get("type") == "run_started":
            started.add(event["run_id"])
        if event.get("type") == "account_finished" and event["run_id"] in started and event["status"] == "COMPLETED":
            key = (event["run_id"], event["account_id"])
            if key not in seen:
                seen.add(key)
                counts[event["account_id"]] += 1
                last[event["account_id"]] = event["ts"]
    return {a: (n, last[a]) for a, n in counts.items()}


def warm_table(db: Path) -> dict[str, tuple[int, str]]:
    return {r["account_id"]: (r["n"], r["last_ts"]) for r in rows(db, "SELECT * FROM warm")}


def checkpoint(db: Path, name: str) -> dict[str, object]:
    (found,) = rows(db, "SELECT * FROM warmup_checkpoints WHERE name = ?", name)
    return found


def test_a_user_projection_matches_a_recomputation_and_counts_a_duplicate_once(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    mixed_log(log)
    done = warmup("project", "--log", log, "--db", db, "--projection", WARM)
    assert done.returncode == 0, done.stderr
    expected = recompute_warm(log)
    assert warm_table(db) == expected
    assert sum(n for n, _ in expected.values()) == 16  # (the copied line would have made it 17)
    cp = checkpoint(db, "warm_counts")
    assert cp["spec"] == WARM and cp["version"] == 1
    assert cp["position"] == checkpoint(db, "core")["position"] == log.stat().st_size
    assert len(rows(db, "SELECT * FROM rejected_events")) == 3  # (copy, unknown run, bad line: none reached it)


def test_ctx_carries_the_runs_facts_and_the_attempt(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    lines = run_lines("r1", ["alice"], {}, task_id="morning")
    retry = [
        line("account_finished", ts(50), run_id="r1", account_id="alice", status="FAILED", error="x", attempt=1,
             retrying=True),
        line("account_started", ts(51), run_id="r1", account_id="alice", attempt=2),
    ]
    lines = lines[:2] + retry + lines[2:]
    log.write_bytes(b"".join(lines))
    done = warmup("project", "--log", log, "--db", db, "--projection", FACTS)
    assert done.returncode == 0, done.stderr
    seen = [(r["type"], r["task_id"], r["task_name"], r["run_status"], r["attempt"])
            for r in rows(db, "SELECT * FROM seen ORDER BY rowid")]
    assert seen == [
        ("account_started", "morning", "Morning", "RUNNING", 1),
        ("account_finished", "morning", "Morning", "RUNNING", 1),
        ("account_started", "morning", "Morning", "RUNNING", 2),
        ("account_finished", "morning", "Morning", "RUNNING", 1),  # (the event's own attempt)
        ("run_finished", "morning", "Morning", "COMPLETED", None),
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(min_value=0, max_value=10**9), max_size=6), seed=st.integers(0, 1000))
def test_projecting_in_any_increments_equals_one_replay(tmp_path_factory: pytest.TempPathFactory,
                                                        cuts: list[int], seed: int) -> None:
    tmp = tmp_path_factory.mktemp("increments")
    full = tmp / "full.jsonl"
    data = b"".join(mixed_log(full, runs=3 + seed % 3))
    log, db = tmp / "events.jsonl", tmp / "warmup.db"
    log.write_bytes(b"")
    written = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
        with open(log, "ab") as f:
            f.write(data[written:cut])
        written = max(written, cut)
        with Projector(log, db, projections=[_load(WARM)]) as p:
            p.catch_up()
    reference = tmp / "reference.db"
    with Projector(full, reference, projections=[_load(WARM)]) as p:
        p.catch_up()
    assert warm_table(db) == warm_table(reference) == recompute_warm(full)


def _load(spec: str, target: Path | None = None) -> SQLiteProjection:
    from warmup.projector.specs import load_projection

    projection = load_projection(spec, target)
    assert isinstance(projection, SQLiteProjection)
    return projection


def test_a_handler_that_raises_stops_its_projection_alone(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    first = run_lines("r1", ["alice"], {})
    second = run_lines("r2", ["alice", "bob", "carol"], {})
    log.write_bytes(b"".join(first))
    assert warmup("project", "--log", log, "--db", db, "--projection", FAILS, "--projection", WARM).returncode == 0
    before = checkpoint(db, "fails_on_bob")
    with open(log, "ab") as f:
        f.write(b"".join(second))
    done = warmup("project", "--log", log, "--db", db, "--projection", FAILS, "--projection", WARM)
    assert done.returncode == 1
    bob = orjson.loads(next(x for x in second if b'"account_finished"' in x and b'"bob"' in x))
    said = [x for x in done.stderr.splitlines() if "fails_on_bob" in x]
    assert len(said) == 1, done.stderr
    assert bob["id"] in said[0] and "account_finished" in said[0]
    assert "ZeroDivisionError: bob divided by zero" in said[0]
    assert "Traceback" not in done.stderr
    assert checkpoint(db, "fails_on_bob") == before  # its checkpoint stays before the batch
    assert [r["account_id"] for r in rows(db, "SELECT account_id FROM finished")] == ["alice"]  # rolled back
    assert warm_table(db) == recompute_warm(log)  # the others went on
    assert checkpoint(db, "core")["position"] == log.stat().st_size
    # fixed, it catches up from its checkpoint (with a scratch validator: the core is ahead of it)
    fixed = warmup("project", "--log", log, "--db", db, "--projection", FAILS, "--projection", WARM,
                   env={**os.environ, "WARMUP_TEST_FIXED": "1"})
    assert fixed.returncode == 0, fixed.stderr
    assert sorted(r["account_id"] for r in rows(db, "SELECT account_id FROM finished")) == [
        "alice", "alice", "bob", "carol"]
    assert checkpoint(db, "fails_on_bob")["position"] == log.stat().st_size


@pytest.mark.parametrize(("spec", "said"), [
    ("nocolon", "expected MODULE:CLASS"),
    ("no_such_module_xyz:Thing", "cannot import no_such_module_xyz: ModuleNotFoundError"),
    ("tests.user_projections:Missing", "has no Missing"),
    ("tests.user_projections:NotAProjection", "is not a Projection"),
])
def test_a_bad_projection_spec_is_one_line_and_exit_2(tmp_path: Path, spec: str, said: str) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"".join(run_lines("r1", ["alice"], {})))
    for command in ("project", "replay"):
        done = warmup(command, "--log", log, "--db", db, "--projection", spec)
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and said in done.stderr, done.stderr
    assert not db.exists()


def test_two_projections_with_one_name_are_refused(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(run_lines("r1", ["alice"], {})))
    done = warmup("project", "--log", log, "--db", tmp_path / "w.db", "--projection", WARM,
                  "--projection", "tests.user_projections:WarmCountsV2")
    assert done.returncode == 2 and "the name 'warm_counts' is taken" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_new_version_is_rebuilt_from_the_log_and_says_so(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    mixed_log(log)
    assert warmup("project", "--log", log, "--db", db, "--projection", WARM).returncode == 0
    done = warmup("project", "--log", log, "--db", db, "--projection", "tests.user_projections:WarmCountsV2")
    assert done.returncode == 0, done.stderr
    assert "'warm_counts' was built by version 1; this is version 2: rebuilding it" in done.stderr
    assert warm_table(db) == recompute_warm(log)  # (not doubled)
    assert checkpoint(db, "warm_counts")["version"] == 2


def test_replay_rebuilds_the_projections_beside_the_core_tables_and_never_wipes_them(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    mixed_log(log)
    assert warmup("project", "--log", log, "--db", db, "--projection", WARM).returncode == 0
    done = warmup("replay", "--log", log, "--db", db)
    assert done.returncode == 0, done.stderr
    assert warm_table(db) == recompute_warm(log)
    # that projection alone, from the whole log (the core tables untouched)
    core_before = checkpoint(db, "core")
    done = warmup("replay", "--log", log, "--db", db, "--projection", WARM)
    assert done.returncode == 0, done.stderr
    assert "rebuilt warm_counts" in done.stderr
    assert warm_table(db) == recompute_warm(log)
    assert checkpoint(db, "core") == core_before


def test_a_projection_with_its_own_target_added_late_and_one_ahead_of_the_core(tmp_path: Path) -> None:
    log, db, mine = tmp_path / "events.jsonl", tmp_path / "warmup.db", tmp_path / "mine.db"
    data = mixed_log(log)
    half = b"".join(data[: len(data) // 2])
    log.write_bytes(half)
    assert warmup("project", "--log", log, "--db", db).returncode == 0  # the core alone first
    early_core = tmp_path / "early.db"
    shutil.copy(db, early_core)
    log.write_bytes(b"".join(data))
    assert warmup("project", "--log", log, "--db", db).returncode == 0
    # added when the core is at the end: it catches up from the start with a scratch validator
    done = warmup("project", "--log", log, "--db", db, "--projection", WARM, "--target", mine)
    assert done.returncode == 0, done.stderr
    assert warm_table(mine) == recompute_warm(log)
    assert rows(db, "SELECT name FROM sqlite_master WHERE name = 'warm'") == []
    assert len([p for p in tmp_path.glob("warmup.db.behind-*") if p.suffix != ".lock"]) == 1  # (kept for next time)
    # the core behind it (as after a crash between the two commits): nothing is applied to it twice
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy(early_core, db)
    done = warmup("project", "--log", log, "--db", db, "--projection", WARM, "--target", mine)
    assert done.returncode == 0, done.stderr
    assert warm_table(mine) == recompute_warm(log)


@pytest.mark.faults
def test_sigkills_of_project_leave_the_projection_equal_to_a_replay(tmp_path: Path) -> None:
    """10 SIGKILLs of `warmup project --follow --projection` at random moments while the log grows."""
    full = tmp_path / "full.jsonl"
    data = mixed_log(full, runs=60)
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    log.write_bytes(b"")
    rng = random.Random(7)
    chunk = len(data) // 10 + 1
    for kill in range(10):
        with open(log, "ab") as f:
            f.write(b"".join(data[kill * chunk:(kill + 1) * chunk]))
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "project", "--follow", "--log", str(log), "--db", str(db),
             "--projection", WARM, "--projection", FACTS],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert warmup("project", "--log", log, "--db", db, "--projection", WARM, "--projection", FACTS).returncode == 0
    reference = tmp_path / "reference.db"
    with Projector(log, reference, projections=[_load(WARM), _load(FACTS)]) as p:
        p.catch_up()
    assert warm_table(db) == warm_table(reference) == recompute_warm(log)
    assert rows(db, "SELECT * FROM seen ORDER BY event_id") == rows(reference, "SELECT * FROM seen ORDER BY event_id")


def test_on_refuses_an_unknown_event_type() -> None:
    with pytest.raises(TypeError, match="unknown event type 'acount_finished'"):
        on("acount_finished")


def test_the_steps_projection_answers_the_slowest_step_across_runs(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    mixed_log(log, runs=3)
    done = warmup("project", "--log", log, "--db", db, "--projection", "steps")
    assert done.returncode == 0, done.stderr
    steps = rows(db, "SELECT * FROM steps ORDER BY ts, event_id")
    expected = [orjson.loads(x) for x in log.read_bytes().splitlines() if b'"step_finished"' in x]
    assert sorted(s["event_id"] for s in steps) == sorted(e["id"] for e in expected)
    assert {(s["run_id"], s["account_id"], s["attempt"], s["step_index"], s["action"], bool(s["ok"]))
            for s in steps} == {(e["run_id"], e["account_id"], 1, e["index"], e["action"], e["ok"]) for e in expected}
    slowest = rows(db, "SELECT action, MAX(duration_ms) AS worst FROM steps GROUP BY action ORDER BY worst DESC")
    assert slowest == [{"action": "click", "worst": 30.0}, {"action": "goto", "worst": 12.5}]
    assert warmup("replay", "--log", log, "--db", db).returncode == 0  # rebuilt with the core, not wiped
    assert len(rows(db, "SELECT * FROM steps")) == len(expected)


def test_the_example_of_docs_projections_works_as_written(tmp_path: Path) -> None:
    """A newcomer copies the page's example into mytables.py and runs the command it shows."""
    page = (REPO / "docs" / "projections.md").read_text()
    example = page.split("## A complete example", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "mytables.py").write_text(example)
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    mixed_log(log)
    done = warmup("project", "--log", log, "--db", db, "--projection", "mytables:WarmCounts", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert warm_table(db) == recompute_warm(log)


def test_a_core_of_another_version_is_rebuilt_with_the_projections_beside_it(tmp_path: Path) -> None:
    import sqlite3

    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    mixed_log(log)
    assert warmup("project", "--log", log, "--db", db, "--projection", WARM).returncode == 0
    conn = sqlite3.connect(db)
    conn.execute("UPDATE warmup_checkpoints SET version = 0 WHERE name = 'core'")
    conn.commit()
    conn.close()
    done = warmup("project", "--log", log, "--db", db, "--projection", WARM)
    assert done.returncode == 0, done.stderr
    assert "built by projection version 0" in done.stderr and "Traceback" not in done.stderr
    assert warm_table(db) == recompute_warm(log)


def test_a_projection_left_behind_by_another_projector_catches_up_from_where_it_was(tmp_path: Path) -> None:
    """`warmup run`'s own projector moves the core; a follower of your own catches up incrementally."""
    full = tmp_path / "full.jsonl"
    data = mixed_log(full, runs=8)
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    step = len(data) // 4 + 1
    said = []
    for k in range(4):
        with open(log, "ab") as f:
            f.write(b"".join(data[k * step:(k + 1) * step]))
        assert warmup("project", "--log", log, "--db", db).returncode == 0  # the core alone moves on
        done = warmup("project", "--log", log, "--db", db, "--projection", WARM)
        assert done.returncode == 0, done.stderr
        said.append(done.stderr)
        assert warm_table(db) == recompute_warm(log)
    assert "from the start of the log" in said[0]
    assert not any("from the start of the log" in x for x in said[1:])  # (its validator moved on with it)


def test_a_target_built_from_another_log_is_refused_not_skipped(tmp_path: Path) -> None:
    first, second, mine = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "mine.db"
    mixed_log(first)
    second.write_bytes(b"".join(run_lines("other", ["zed"], {})))
    assert warmup("project", "--log", first, "--db", tmp_path / "a.db", "--projection", WARM,
                  "--target", mine).returncode == 0
    done = warmup("project", "--log", second, "--db", tmp_path / "b.db", "--projection", WARM, "--target", mine)
    assert done.returncode == 1
    assert "warm_counts" in done.stderr and f"warmup replay --projection {WARM}" in done.stderr, done.stderr
    assert "zed" not in warm_table(mine) and "Traceback" not in done.stderr


def test_strict_holds_for_a_projection_that_catches_up(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    good = run_lines("r1", ["alice"], {})
    later = run_lines("r2", ["bob"], {})
    log.write_bytes(b"".join(good) + b"not json\n" + b"".join(later))
    assert warmup("project", "--strict", "--log", log, "--db", db).returncode == 1
    done = warmup("project", "--strict", "--log", log, "--db", db, "--projection", WARM)
    assert done.returncode == 1 and "invalid line at byte" in done.stderr
    assert set(warm_table(db)) == {"alice"}  # (bob's run is after the bad line)
    assert checkpoint(db, "warm_counts")["position"] == checkpoint(db, "core")["position"] == sum(map(len, good))


def test_a_validator_of_a_replaced_log_is_rebuilt_not_trusted(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    mixed_log(log)
    assert warmup("project", "--log", log, "--db", db).returncode == 0
    assert warmup("project", "--log", log, "--db", db, "--projection", WARM).returncode == 0  # (a validator kept)
    log.write_bytes(b"".join(run_lines("fresh", ["erin", "frank"], {})))  # another log at the same path
    assert warmup("replay", "--log", log, "--db", db).returncode == 0
    log_grown = log.read_bytes() + b"".join(run_lines("fresh2", ["erin"], {}))
    log.write_bytes(log_grown)
    assert warmup("project", "--log", log, "--db", db).returncode == 0
    done = warmup("project", "--log", log, "--db", db, "--projection", WARM)
    assert done.returncode == 0, done.stderr
    assert warm_table(db) == recompute_warm(log)


def test_a_version_bump_before_any_batch_committed_still_rebuilds(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    mixed_log(log)
    first = warmup("project", "--log", log, "--db", db, "--projection", "tests.user_projections:FinishedV1")
    assert first.returncode == 1 and "version 1 is broken" in first.stderr
    done = warmup("project", "--log", log, "--db", db, "--projection", "tests.user_projections:FinishedV2")
    assert done.returncode == 0, done.stderr
    assert "was built by version 1" in done.stderr
    assert len(rows(db, "SELECT * FROM fin")) == sum(1 for x in log.read_bytes().splitlines()
                                                       if b'"account_finished"' in x) - 2  # (copy, unknown run)


def test_a_handler_that_commits_is_refused_and_the_batch_stays_whole(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    mixed_log(log)
    done = warmup("project", "--log", log, "--db", db, "--projection", "tests.user_projections:CommitsInHandler",
                  "--projection", WARM)
    assert done.returncode == 1
    assert "'commits' stopped" in done.stderr and "not authorized" in done.stderr, done.stderr
    assert rows(db, "SELECT * FROM committed") == []
    assert checkpoint(db, "commits")["position"] == 0
    assert warm_table(db) == recompute_warm(log)
    assert checkpoint(db, "core")["position"] == log.stat().st_size


def test_a_projection_whose_create_raises_stops_in_one_line_and_the_core_goes_on(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    mixed_log(log)
    done = warmup("project", "--log", log, "--db", db, "--projection", "tests.user_projections:CreateRaises")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    said = [x for x in done.stderr.splitlines() if "create_raises" in x]
    assert len(said) == 1 and said[0].endswith(
        "projection 'create_raises' stopped: cannot set it up: ValueError: no table for you"), done.stderr
    assert checkpoint(db, "core")["position"] == log.stat().st_size


def test_a_projections_checkpoint_counts_only_its_own_events(tmp_path: Path) -> None:
    """The counts are a function of the log and the projection, not of who else runs beside it; and a
    batch with no event for it still moves its checkpoint (it never falls behind for that)."""
    log = tmp_path / "events.jsonl"
    data = mixed_log(log)
    alone, together = tmp_path / "alone.db", tmp_path / "together.db"
    for k in range(1, 4):
        log.write_bytes(b"".join(data[: len(data) * k // 3]))
        assert warmup("project", "--log", log, "--db", alone, "--projection", WARM).returncode == 0
        done = warmup("project", "--log", log, "--db", together, "--projection", WARM, "--projection", "steps")
        assert done.returncode == 0 and "behind" not in done.stderr, done.stderr
    keys = ("position", "events_applied", "last_event_id", "fingerprint")
    assert {k: checkpoint(alone, "warm_counts")[k] for k in keys} == {
        k: checkpoint(together, "warm_counts")[k] for k in keys}
    assert checkpoint(alone, "warm_counts")["events_applied"] == sum(
        1 for x in log.read_bytes().splitlines() if b'"account_finished"' in x) - 2


def test_status_lists_the_projections_beside_the_core_tables(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    mixed_log(log)
    assert warmup("project", "--log", log, "--db", db, "--projection", WARM).returncode == 0
    shown = warmup("status", "--db", db)
    assert shown.returncode == 0, shown.stderr
    assert f"projection warm_counts (version 1, {WARM}): 24 events handled, up to date" in shown.stdout
    data = orjson.loads(warmup("status", "--db", db, "--json").stdout)
    assert [(p["name"], p["events_applied"]) for p in data["projections"]] == [("warm_counts", 24)]


@pytest.mark.browser
def test_warmup_run_keeps_a_projection_current_beside_the_browsers(site: str, work: Workdir) -> None:
    task = work.task(f"""
id = "proj"
concurrency = 2
[[accounts]]
id = "p1"
[[accounts]]
id = "p2"
[[steps]]
goto = "{site}/feed"
[[steps]]
click = "#more"
""")
    done = warmup(*work.run_args(task, "--projection", "steps", "--projection", WARM))
    assert done.returncode == 0, done.stderr
    steps = rows(work.db, "SELECT run_id, account_id, attempt, step_index, action, ok FROM steps ORDER BY rowid")
    logged = [e for e in work.events() if e["type"] == "step_finished"]
    assert [(s["account_id"], s["step_index"], s["action"], s["ok"]) for s in steps] == [
        (e["account_id"], e["index"], e["action"], int(e["ok"])) for e in logged]
    assert {s["attempt"] for s in steps} == {1}
    assert warm_table(work.db) == recompute_warm(work.log)
    bad = warmup(*work.run_args(task, "--projection", "tests.user_projections:Nope"))
    assert bad.returncode == 2 and "has no Nope" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert len([e for e in work.events() if e["type"] == "run_started"]) == 1  # (refused before anything ran)


def test_a_name_that_is_not_an_identifier_is_refused_in_one_line(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(run_lines("r1", ["alice"], {})))
    done = warmup("project", "--log", log, "--db", tmp_path / "w.db", "--projection", "tests.user_projections:BadName")
    assert done.returncode == 2 and "must be letters, digits and _ only" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_database_removed_under_a_live_runner_is_rebuilt_with_the_projections_sharing_it(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    data = mixed_log(log)
    log.write_bytes(b"".join(data[: len(data) // 2]))
    with Projector(log, db, projections=[_load(WARM)]) as runner:
        runner.catch_up()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        log.write_bytes(b"".join(data))
        runner.catch_up()
        assert runner.failures == []
    assert warm_table(db) == recompute_warm(log)
    assert checkpoint(db, "warm_counts")["position"] == checkpoint(db, "core")["position"] == log.stat().st_size


def test_replay_removes_the_validators_kept_beside_the_database(tmp_path: Path) -> None:
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    mixed_log(log)
    assert warmup("project", "--log", log, "--db", db).returncode == 0
    assert warmup("project", "--log", log, "--db", db, "--projection", WARM).returncode == 0  # behind: a validator
    assert list(tmp_path.glob("warmup.db.behind-*"))
    assert warmup("replay", "--log", log, "--db", db).returncode == 0
    assert not list(tmp_path.glob("warmup.db.behind-*"))
    assert warm_table(db) == recompute_warm(log)


def test_a_projection_is_not_left_behind_when_another_projector_commits_between_the_look_and_the_batch(
        tmp_path: Path) -> None:
    """The race a follower beside `warmup run`'s projector met: it looked at the core (not moved),
    the other projector then committed the new events, and its batch found nothing new to read."""
    log, db = tmp_path / "events.jsonl", tmp_path / "warmup.db"
    data = mixed_log(log)
    log.write_bytes(b"".join(data[: len(data) // 2]))
    with Projector(log, db, projections=[_load(WARM)]) as follower:
        follower.catch_up()
        before = follower._peek_core()
        log.write_bytes(b"".join(data))
        with Projector(log, db) as other:  # the run's projector takes the new events first
            other.catch_up()
        real_peek, looks = follower._peek_core, []

        def peek_before_the_other_commit() -> object:
            looks.append(1)
            return before if len(looks) == 1 else real_peek()

        follower._peek_core = peek_before_the_other_commit  # type: ignore[method-assign]
        follower.catch_up()
    assert warm_table(db) == recompute_warm(log)
    assert checkpoint(db, "warm_counts")["position"] == log.stat().st_size
