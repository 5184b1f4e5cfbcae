"""Helpers of the worker tests: start ``warmup worker`` processes, read a stream's events, check a run.

Everything is real: nats-server processes (``nats_servers``), ``python -m cli`` processes started
as a user starts them, the test site on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from conftest import REPO, cli_env

from warmup.log import open_log_backend


def worker_env(**extra: str) -> dict[str, str]:
    """Short ack wait and lease TTL, so a dead worker's account is taken over within seconds."""
    return cli_env(**{"WARMUP_WORK_ACK_WAIT_S": "4", "WARMUP_LEASE_TTL_S": "3", "WARMUP_GRACE_S": "1", **extra})


def start_worker(url: str, artifacts: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "--log", url, "--artifacts", str(artifacts), *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def start_run(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    """Ctrl-C ``proc`` (if still running) and collect its output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def stream_events(url: str) -> list[dict[str, Any]]:
    """Every event of the stream, in order (read through the log interface)."""
    log = open_log_backend(url)
    out: list[dict[str, Any]] = []
    with log.reader() as reader:
        position = log.START
        while (batch := reader.read(position, 1 << 20)).lines:
            position = batch.end
            out.extend(orjson.loads(line) for line in batch.lines)
    return out


def wait_for(predicate: Callable[[], bool], timeout: float = 60, what: str = "a condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def check_run(events: list[dict[str, Any]], run_id: str, accounts: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The invariants of a run driven by workers; returns each account's attempts (start/finish events).

    - every account is final, exactly once (one account_finished without ``retrying``);
    - no account has two COMPLETED attempts;
    - attempts of one account never overlap in time (each ends before the next starts);
    - ``run_finished`` is the run's last event.
    """
    mine = [e for e in events if e.get("run_id") == run_id]
    assert mine[-1]["type"] == "run_finished", mine[-1]
    by: dict[str, list[dict[str, Any]]] = {a: [] for a in accounts}
    for e in mine:
        if e["type"] in ("account_started", "account_finished"):
            by[e["account_id"]].append(e)
    for account, seq in by.items():
        finals = [e for e in seq if e["type"] == "account_finished" and not e.get("retrying")]
        assert len(finals) == 1, (account, seq)
        completed = [e for e in seq if e["type"] == "account_finished" and e["status"] == "COMPLETED"]
        assert len(completed) <= 1, (account, seq)
        # started, finished, started, finished...: an attempt is closed before the next one starts
        kinds = [e["type"] for e in seq]
        assert kinds[0::2] == ["account_started"] * len(kinds[0::2]) or kinds == ["account_finished"], (account, kinds)
        for first, then in zip(seq, seq[1:], strict=False):
            assert first["ts"] <= then["ts"], (account, first, then)
    return by


def tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of a database, rows sorted: to compare two projections of one log."""
    conn = sqlite3.connect(db)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT LIKE 'warmup_%' ORDER BY name")]
        out = {}
        for name in names:
            rows = conn.execute(f'SELECT * FROM "{name}"').fetchall()
            out[name] = sorted(rows, key=repr)
        return out
    finally:
        conn.close()


def env_without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in names}


__all__ = ["check_run", "env_without", "os", "start_run", "start_worker", "stop", "stream_events", "tables",
           "wait_for", "worker_env"]
