"""``warmup serve`` as a user runs it: a real process on a free loopback port, stopped by real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from conftest import REPO, Workdir, cli_env

START_TIMEOUT_S = 60.0


class ServeProcess:
    """``python -m cli serve --port 0 ...``; ``url`` is read from its first line of stdout."""

    def __init__(self, work: Workdir, tasks: Path, *extra: str, env: dict[str, str] | None = None,
                 token: str | None = None, log: str | None = None) -> None:
        self.work = work
        self.token = token
        self.stderr_path = work.root / f"serve-{time.monotonic_ns()}.err"
        args = [sys.executable, "-m", "cli", "serve", "--tasks", str(tasks), "--port", "0",
                "--log", log or str(work.log), "--db", str(work.db), "--artifacts", str(work.artifacts), *extra]
        run_env = env if env is not None else cli_env()
        if token is not None:
            run_env = {**run_env, "WARMUP_TOKEN": token}
        self._err = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, cwd=REPO, env=run_env, stdout=subprocess.PIPE, stderr=self._err,
                                     stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("warmup serve: http://"):
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"warmup serve did not start: {line!r} {self.stderr()}")
        self.url = line.split()[2].rstrip("/")

    def client(self, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._err.close()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        return code

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(condition: Any, timeout: float = 60, what: str = "the condition") -> Any:
    """Poll ``condition()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def log_events(log: Path, run_id: str | None = None) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_bytes().splitlines():
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if run_id is None or event.get("run_id") == run_id:
            out.append(event)
    return out


def run_finished(log: Path, run_id: str) -> dict[str, Any] | None:
    return next((e for e in log_events(log, run_id) if e["type"] == "run_finished"), None)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
