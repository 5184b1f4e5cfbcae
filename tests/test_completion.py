"""Shell completion: run ids from the log (newest first, and `last`), task files (*.toml and folders)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, cli_env
from projection_support import run_lines, warmup

FIRST, SECOND = "20261129T070000-1a2b3c", "20261129T080000-4d5e6f"


def complete(words: str, cwd: Path, **env: str) -> list[str]:
    """What bash would offer for ``words`` (the last word being completed), through click's protocol."""
    parts = words.split(" ")
    result = subprocess.run(
        [sys.executable, "-m", "cli"], cwd=cwd, capture_output=True, text=True, timeout=60,
        env=cli_env(PYTHONPATH=str(REPO), _WARMUP_COMPLETE="bash_complete", COMP_WORDS=words,
                    COMP_CWORD=str(len(parts) - 1), **env),
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


def test_run_ids_complete_from_the_log_newest_first_for_every_option_that_takes_one(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    lines = run_lines(FIRST, ["a"], {}) + run_lines(SECOND, ["a"], {})
    log.write_bytes(b"".join(lines))
    assert complete("warmup show ", tmp_path, WARMUP_LOG=str(log)) == ["last", SECOND, FIRST]
    assert complete("warmup show 20261129T07", tmp_path, WARMUP_LOG=str(log)) == [FIRST]
    assert complete(f"warmup report --log {log} 2026", tmp_path) == [SECOND, FIRST]  # --log before the Tab
    assert complete(f"warmup run --log {log} --resume l", tmp_path) == ["last"]
    assert complete(f"warmup run --log {log} --retry-failed 20261129T08", tmp_path) == [SECOND]
    assert complete(f"warmup replay --log {log} --run ", tmp_path) == ["last", SECOND, FIRST]
    assert complete(f"warmup tail --log {log} --run 2", tmp_path) == [SECOND, FIRST]
    assert complete("warmup show ", tmp_path) == []  # no log at the default path: nothing, and no noise


def test_task_files_complete_to_toml_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    for name in ("tasks/morning.toml", "tasks/notes.txt", "evening.toml", "accounts.csv", ".hidden.toml"):
        (tmp_path / name).write_text("")
    assert complete("warmup run ", tmp_path) == ["evening.toml", "tasks/"]
    assert complete("warmup run tasks/", tmp_path) == ["tasks/morning.toml"]
    assert complete("warmup run ev", tmp_path) == ["evening.toml"]
    assert complete(f"warmup run {tmp_path}/tasks/m", Path(os.sep)) == [f"{tmp_path}/tasks/morning.toml"]


def test_completion_is_documented_in_the_help_and_the_readme() -> None:
    shown = warmup("--help").stdout
    assert 'eval "$(_WARMUP_COMPLETE=bash_source warmup)"' in shown
    readme = (REPO / "README.md").read_text()
    for shell in ("bash_source", "zsh_source", "fish_source"):
        assert f"_WARMUP_COMPLETE={shell}" in readme
