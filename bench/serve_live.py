"""Benchmark parts of ``bench/serve.py`` that need the real server: append-to-browser latency and idle CPU.

**Latency**: a real ``warmup serve`` on a free port, a real Chromium (Playwright) on a run's page.
Events of that run are appended to the log with the real appender, one every ``--gap-ms``; the page
marks each event it shows (``window.warmupShown[id] = Date.now()``). Latency = shown - appended,
both read from this machine's clock.

**Idle CPU**: the same server (and its projector child) with nothing happening, CPU seconds over
``--idle-s`` seconds from /proc, with no page open and then with one live page open.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from warmup.events.envelope import host_and_pid, make_event  # noqa: E402
from warmup.log import as_log  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def start_serve(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    tasks = root / "tasks"
    tasks.mkdir()
    cmd = [sys.executable, "-m", "cli", "serve", "--tasks", str(tasks), "--port", "0", "--log",
           str(root / "events.jsonl"), "--db", str(root / "warmup.db"), "--artifacts", str(root / "artifacts")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMUP_")}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("warmup serve: http://"):
        raise SystemExit(f"warmup serve did not start: {line!r}")
    return proc, line.split()[2].rstrip("/")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and of its live children (the projector), from /proc."""
    total = 0.0
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def idle_cpu(pid: int, seconds: float) -> float:
    """Percent of one CPU used over ``seconds``."""
    before, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - t0)


def wait_http(client: httpx.Client, path: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get(path)
        if answer.status_code == 200:
            return answer.json()
        time.sleep(0.05)
    raise SystemExit(f"{path} did not answer 200 within {timeout} s")


def measure(events: int = 200, gap_ms: float = 25, *, idle_s: float = 20) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from warmup.browser import find_browser, launch_args

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="warmup-bench-serve-") as tmp:
        root = Path(tmp)
        proc, url = start_serve(root)
        try:
            time.sleep(3)  # start-up done
            out["idle_cpu_pct_no_page"] = idle_cpu(proc.pid, idle_s)
            log = as_log(root / "events.jsonl")
            writer = log.appender(fsync="always")
            run_id = "20261129T070000-abcdef"
            accounts = [f"acct{i:02d}" for i in range(10)]
            host, pid = host_and_pid()
            writer.emit("run_started", run_id=run_id, task_id="bench", task_name="Bench", accounts=accounts, steps=1000,
                        concurrency=10, host=host, pid=pid)
            with httpx.Client(base_url=url, timeout=30) as client:
                wait_http(client, f"/api/runs/{run_id}")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=find_browser(headless=True), args=launch_args())
                page = browser.new_page()
                page.goto(f"{url}/runs/{run_id}")
                page.wait_for_function("() => window.warmupShown !== undefined", timeout=30_000)
                time.sleep(1)  # the EventSource is open
                appended: dict[str, float] = {}
                todo = [make_event("account_started", run_id=run_id, account_id=a, attempt=1) for a in accounts]
                todo += [make_event("step_finished", run_id=run_id, account_id=accounts[i % len(accounts)],
                                    index=i // len(accounts), action="goto", ok=True, duration_ms=12.5, error=None)
                         for i in range(events - len(accounts))]
                for event in todo:  # "appended" is when the append starts (before the write and its fsync)
                    appended[event["id"]] = time.time() * 1000
                    writer.append(event)
                    time.sleep(gap_ms / 1000)
                time.sleep(2)
                shown: dict[str, float] = page.evaluate("() => window.warmupShown")
                latencies = sorted(shown[i] - t for i, t in appended.items() if i in shown)
                out["events"] = len(appended)
                out["shown"] = len(latencies)
                if latencies:
                    out["latency_p50_ms"] = statistics.median(latencies)
                    out["latency_p95_ms"] = latencies[int(0.95 * (len(latencies) - 1))]
                    out["latency_max_ms"] = latencies[-1]
                out["idle_cpu_pct_one_page"] = idle_cpu(proc.pid, idle_s)
                browser.close()
            writer.close()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=25)
    parser.add_argument("--idle-s", type=float, default=20)
    args = parser.parse_args()
    for key, value in measure(args.events, args.gap_ms, idle_s=args.idle_s).items():
        print(f"{key:>24}: {value:.2f}" if isinstance(value, float) else f"{key:>24}: {value}")
