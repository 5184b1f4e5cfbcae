"""A replay with --until/--run never lands on the live database by accident, and says what it is.

- no --db: the scoped replay goes to its own file beside the default database, and says where;
- --db naming a database with the full tables: refused (exit 1) unless --force;
- a scoped database says so in `status`, `runs` and `show` (and `--json` carries the scope);
- a run whose projector child meets a scoped database ends with the command that works.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, Workdir, cli_env
from projection_support import dump, rows, run_lines, warmup

FIRST, SECOND = "20261129T070000-1a2b3c", "20261129T080000-4d5e6f"


@pytest.fixture()
def here(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder with the default warmup-data/events.jsonl and warmup-data/warmup.db (two runs, projected)."""
    data = tmp_path / "warmup-data"
    data.mkdir()
    lines = run_lines(FIRST, ["alice", "bob"], {})
    lines += [x.replace(b"2026-11-29T07:", b"2026-11-29T08:") for x in run_lines(SECOND, ["alice"], {})]
    (data / "events.jsonl").write_bytes(b"".join(lines))
    env = cli_env(PYTHONPATH=str(REPO))
    assert warmup("project", cwd=tmp_path, env=env).returncode == 0
    return tmp_path, env


def test_without_db_a_scoped_replay_writes_its_own_file_and_leaves_the_live_database_alone(
    here: tuple[Path, dict[str, str]],
) -> None:
    root, env = here
    live = root / "warmup-data" / "warmup.db"
    before = dump(live)
    until = warmup("replay", "--until", "2026-11-29T07:30:00Z", cwd=root, env=env)
    assert until.returncode == 0, until.stderr
    target = Path("warmup-data/warmup-until-20261129T073000Z.db")
    assert until.stdout == f"partial replay written to {target} (the live warmup-data/warmup.db is untouched)\n"
    assert [r["id"] for r in rows(root / target, "SELECT id FROM runs")] == [FIRST]
    one = warmup("replay", "--run", "20261129T08", cwd=root, env=env)
    assert one.returncode == 0, one.stderr
    assert f"warmup-data/warmup-run-{SECOND}.db" in one.stdout
    assert [r["id"] for r in rows(root / f"warmup-data/warmup-run-{SECOND}.db", "SELECT id FROM runs")] == [SECOND]
    assert dump(live) == before  # the live tables never changed
    assert warmup("project", cwd=root, env=env).returncode == 0  # and the live database still extends
    status = warmup("status", cwd=root, env=env)
    assert status.returncode == 0 and "partial replay" not in status.stdout


def test_an_explicit_db_with_the_full_tables_needs_force_and_a_scoped_one_says_so(
    here: tuple[Path, dict[str, str]],
) -> None:
    root, env = here
    live = root / "warmup-data" / "warmup.db"
    before = dump(live)
    for how in (["--db", str(live)], []):
        extra = {} if how else {"WARMUP_DB": str(live)}  # an environment variable names it on purpose too
        refused = warmup("replay", "--until", "2026-11-29T07:30:00Z", *how, cwd=root, env={**env, **extra})
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr == (
            f"warmup: --db {live} holds the full tables; a replay with --until/--run would replace them with part "
            f"of the log: add --force, or leave out --db to write {live.parent}/warmup-until-20261129T073000Z.db\n")
        assert dump(live) == before
    forced = warmup("replay", "--until", "2026-11-29T07:30:00Z", "--db", live, "--force", cwd=root, env=env)
    assert forced.returncode == 0, forced.stderr
    line = (f"partial replay: {live} holds events up to 2026-11-29T07:30:00.000000Z only (made by "
            "`warmup replay --until/--run`); `warmup project` will not extend it")
    for args in (["status"], ["runs"], ["show", "last"]):
        shown = warmup(*args, "--db", live, cwd=root, env=env)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines()[0] == line, args
    scope = json.loads(warmup("status", "--db", live, "--json", cwd=root, env=env).stdout)["scope"]
    assert scope == {"until": "2026-11-29T07:30:00.000000Z", "runs": []}
    # a scoped --db may be replaced by another scoped replay without --force, and by a full one
    again = warmup("replay", "--run", FIRST, "--db", live, cwd=root, env=env)
    assert again.returncode == 0, again.stderr
    assert warmup("replay", "--db", live, cwd=root, env=env).returncode == 0
    assert dump(live) == before
    assert "partial replay" not in warmup("status", "--db", live, cwd=root, env=env).stdout


@pytest.mark.browser
def test_a_run_whose_projector_meets_a_scoped_database_names_the_command_that_works(work: Workdir) -> None:
    first = work.task('[[accounts]]\nid = "a"\n[[steps]]\nwait_ms = 1\n')
    assert warmup(*work.run_args(first), env=cli_env()).returncode == 0
    assert warmup("replay", "--log", work.log, "--db", work.db, "--run", "last", "--force").returncode == 0
    result = warmup(*work.run_args(first), env=cli_env())
    assert result.returncode == 0, result.stderr  # the run itself is fine: only the tables lag
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("warmup: the projector stopped early (exit 1)") or last.startswith(
        "warmup: the projector exited with 1"), last
    works = f"run `warmup replay --log {work.log} --db {work.db}` to rebuild its full tables"
    assert f"{work.db} holds a partial replay" in last and last.endswith(works)
    assert warmup("replay", "--log", work.log, "--db", work.db).returncode == 0  # the named command works
    assert len(rows(work.db, "SELECT id FROM runs")) == 2
