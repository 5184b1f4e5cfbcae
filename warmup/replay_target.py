"""Where ``warmup replay`` writes: a scoped replay never lands on the live database by accident.

A replay with ``--until`` or ``--run`` builds a picture of part of the log, which ``warmup project``
refuses to extend (``warmup.projector.scope``). Over the live ``warmup-data/warmup.db`` that would
show finished runs as RUNNING and stop the next run's projector. So:

- no ``--db`` given (the default, not ``--db``/``WARMUP_DB``): the scoped replay goes to a file of its
  own beside the default database, named after its scope (``warmup-until-20261129T060000Z.db``,
  ``warmup-run-<id>.db``, ``warmup-run-<id>-until-<time>.db``), and its path is printed;
- ``--db`` naming a database that holds the full tables (a checkpoint with no scope): refused (exit 1)
  unless ``--force``; a new file, an empty one or another scoped database is fine;
- a replay without a scope rebuilds the database it is given, as always.

``--run`` values are resolved among the log's runs first (a unique prefix or ``last``:
``warmup.run_ids``), so the scope records whole ids.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from warmup.errors import WarmupError
from warmup.run_ids import resolve_from_log
from warmup.times import parse_log_ts


@dataclass(frozen=True)
class ReplayTarget:
    db_path: Path
    run_ids: tuple[str, ...]
    note: str | None  # printed after the replay: where a scoped replay went when no --db was given


def scoped_file_name(until: str | None, run_ids: tuple[str, ...]) -> str:
    """``warmup-run-<id>[-and-N-more][-until-<time>].db`` / ``warmup-until-<time>.db``; safe as a file name."""
    parts = ["warmup"]
    if run_ids:
        parts.append(f"run-{sorted(run_ids)[0]}")
        if len(run_ids) > 1:
            parts.append(f"and-{len(run_ids) - 1}-more")
    if until is not None:
        compact = re.sub(r"\.\d+", "", parse_log_ts(until, "--until")).replace("-", "").replace(":", "")
        parts.append(f"until-{compact}")
    return re.sub(r"[^A-Za-z0-9._+-]", "_", "-".join(parts)) + ".db"


def holds_full_projection(db_path: Path) -> bool:
    """True when ``db_path`` is a warmup database whose checkpoint has no scope (the whole log)."""
    if not db_path.is_file() or db_path.stat().st_size == 0:
        return False
    try:
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
        try:
            row = conn.execute("SELECT scope FROM warmup_checkpoints WHERE name = 'core'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return False  # not ours, or no checkpoint: the replay's own checks say what is wrong
    return row is not None and not row[0]


def choose_replay_target(
    log_path: Path | str, db_path: Path, *, until: str | None, run_ids: tuple[str, ...], explicit_db: bool, force: bool
) -> ReplayTarget:
    """The database a replay writes and the whole run ids of its scope; refuses (exit 1) to overwrite full tables."""
    if until is None and not run_ids:
        return ReplayTarget(db_path, (), None)
    if until is not None:
        parse_log_ts(until, "--until")  # bad input first, exit 2
    resolved = tuple(dict.fromkeys(resolve_from_log(log_path, r) for r in run_ids))
    if not explicit_db:
        target = db_path.with_name(scoped_file_name(until, resolved))
        return ReplayTarget(target, resolved, f"partial replay written to {target} (the live {db_path} is untouched)")
    if not force and holds_full_projection(db_path):
        raise WarmupError(
            f"--db {db_path} holds the full tables; a replay with --until/--run would replace them with part of "
            f"the log: add --force, or leave out --db to write {db_path.with_name(scoped_file_name(until, resolved))}"
        )
    return ReplayTarget(db_path, resolved, None)
