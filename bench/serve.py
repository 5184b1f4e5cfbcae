"""Benchmark of ``warmup serve``'s pages and API list endpoints: server time with 10,000 runs.

It writes a synthetic log (``bench/synthetic_log.py``): ``--runs`` runs of ``--accounts`` accounts
(default 10,000 x 10: 100,000 run_accounts rows, ~800,000 events) plus runs of 50 and 500 accounts,
projects it with ``warmup project`` (as a user runs it), then asks the app (``build_app``, through
httpx's ASGI transport: the server's own time, every table read and render in its thread pool as
in production) for each page ``--repeat`` times and prints p50/p95 per page.

The run page's timeline is a fragment of its own (``/runs/ID/timeline``), fetched by the page: it
reads the log (a scan of the whole file for a file log), so it is timed apart, uncached (a live
run's, or a finished run's first time) and cached (a finished run's timeline afterwards).

Goal (issue 13): p95 under 100 ms for the runs page and the run page with 10,000 runs.

Then (``bench/serve_live.py``, unless ``--no-live``) the real ``warmup serve`` process: an event
appended to the log until a real Chromium's run page shows it (goal p95 under 250 ms), and the idle
server's CPU (goal under 1%), without a page open and with one live page open.

Usage:  .venv/bin/python bench/serve.py [--runs 10000] [--accounts 10] [--repeat 200] [--keep DIR] [--json]
                                        [--no-live] [--events 200] [--idle-s 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import httpx  # noqa: E402
import serve_live  # noqa: E402
from synthetic_log import synthetic_events  # noqa: E402

from warmup.log import as_log  # noqa: E402
from warmup.serve import timeline  # noqa: E402
from warmup.serve.app import build_app  # noqa: E402
from warmup.serve.catalog import TaskCatalog  # noqa: E402
from warmup.serve.config import ServeConfig  # noqa: E402
from warmup.serve.launcher import Launcher  # noqa: E402
from warmup.serve.state import ServeState  # noqa: E402

BIG_RUN = "run-2-000001"  # the run of 50 accounts
HUGE_RUN = "run-3-000001"  # a run of 500 accounts
TASK = """\
id = "task-{n:02d}"
name = "Task {n}"
[[accounts]]
id = "t{n:02d}-acct000"
[[steps]]
goto = "http://127.0.0.1:9/"
"""


def runs_of(seed: int, runs: int, accounts: int) -> Iterator[dict]:
    """The events of ``runs`` whole runs of ``accounts`` accounts each."""
    finished = 0
    for event in synthetic_events(10**12, accounts_per_run=accounts, seed=seed):
        yield event
        if event["type"] == "run_finished":
            finished += 1
            if finished == runs:
                return


def build(root: Path, runs: int, accounts: int) -> tuple[int, float, float]:
    """Log and database; returns (events, seconds to write, seconds to project)."""
    log = root / "events.jsonl"
    t0 = time.perf_counter()
    n = 0
    with open(log, "wb") as f:
        buf: list[bytes] = []
        for event in (*runs_of(1, runs, accounts), *runs_of(2, 1, 50), *runs_of(3, 1, 500)):
            buf.append(orjson.dumps(event))
            n += 1
            if len(buf) >= 10_000:
                f.write(b"\n".join(buf) + b"\n")
                buf.clear()
        f.write(b"\n".join(buf) + b"\n" if buf else b"")
    t1 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cli", "project", "--log", str(log), "--db", str(root / "warmup.db"),
                           "-q"], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"warmup project failed: {done.stderr.strip()}")
    tasks = root / "tasks"
    tasks.mkdir(exist_ok=True)
    for k in range(20):
        (tasks / f"task-{k:02d}.toml").write_text(TASK.format(n=k))
    return n, t1 - t0, time.perf_counter() - t1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(root: Path, repeat: int) -> list[dict]:
    config = ServeConfig(tasks_dir=root / "tasks", log=root / "events.jsonl", db_path=root / "warmup.db",
                         artifacts=root / "artifacts")
    log = as_log(config.log)
    state = ServeState(config=config, log=log, catalog=TaskCatalog(config.tasks_dir),
                       launcher=Launcher(config, log, lambda line: None))
    app = build_app(state)
    transport = httpx.ASGITransport(app=app)
    first_runs = None
    results = []
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        listing = (await client.get("/api/runs", params={"limit": 50})).json()
        first_runs = listing["next"]
        paths = [
            ("GET /", "/"),
            ("GET /runs", "/runs"),
            ("GET /runs (page 2)", f"/runs?before={first_runs}"),
            ("GET /runs?status=FAILED", "/runs?status=FAILED"),
            ("GET /runs?task=task-07", "/runs?task=task-07"),
            ("GET /runs/{id} (50 accounts)", f"/runs/{BIG_RUN}"),
            ("GET /runs/{id} (500 accounts)", f"/runs/{HUGE_RUN}"),
            ("GET /accounts", "/accounts"),
            ("GET /api/tasks", "/api/tasks"),
            ("GET /api/runs", "/api/runs"),
            ("GET /api/runs/{id}", f"/api/runs/{BIG_RUN}"),
            ("GET /api/accounts", "/api/accounts"),
            ("GET /runs/{id}/timeline (cached)", f"/runs/{BIG_RUN}/timeline"),
        ]
        for name, path in paths:
            times, size = await _time(client, path, repeat)
            results.append({"page": name, "n": repeat, "bytes": size, "p50_ms": statistics.median(times),
                            "p95_ms": percentile(times, 0.95), "max_ms": max(times)})
        uncached = []
        for _ in range(max(3, repeat // 40)):
            timeline.TIMELINES.__init__()  # (forgets every timeline)
            times, size = await _time(client, f"/runs/{BIG_RUN}/timeline", 1)
            uncached += times
        results.append({"page": "GET /runs/{id}/timeline (uncached: reads the log)", "n": len(uncached),
                        "bytes": size, "p50_ms": statistics.median(uncached), "p95_ms": percentile(uncached, 0.95),
                        "max_ms": max(uncached)})
    return results


async def _time(client: httpx.AsyncClient, path: str, repeat: int) -> tuple[list[float], int]:
    times = []
    size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        answer = await client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{path}: {answer.status_code} {answer.text[:200]}")
        size = len(answer.content)
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=10, help="accounts per run")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the log and database in this folder")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-live", action="store_true", help="leave out the latency and idle-CPU parts")
    parser.add_argument("--events", type=int, default=200, help="events appended for the latency")
    parser.add_argument("--idle-s", type=float, default=20, help="seconds of each idle-CPU measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        built = None
        if not (root / "warmup.db").exists():
            built = build(root, args.runs, args.accounts)
            if not args.json:
                print(f"log: {built[0]} events ({(root / 'events.jsonl').stat().st_size / 1e6:.0f} MB) written in "
                      f"{built[1]:.1f} s, projected in {built[2]:.1f} s")
        results = asyncio.run(measure(root, args.repeat))
    live = {} if args.no_live else serve_live.measure(args.events, idle_s=args.idle_s)
    if args.json:
        print(json.dumps({"runs": args.runs, "accounts_per_run": args.accounts, "results": results, "live": live},
                         indent=2))
        return
    print(f"{args.runs} runs x {args.accounts} accounts (+ runs of 50 and 500); server time (ASGI transport), "
          f"{args.repeat} requests each")
    print(f"{'page':<52} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'KB':>7}")
    for r in results:
        print(f"{r['page']:<52} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['max_ms']:>8.1f} {r['bytes'] / 1024:>7.1f}")

    if live:
        print(f"live (a real warmup serve and Chromium): {live['shown']} of {live['events']} appended events shown; "
              f"append -> shown p50 {live['latency_p50_ms']:.1f} ms, p95 {live['latency_p95_ms']:.1f} ms, "
              f"max {live['latency_max_ms']:.1f} ms")
        print(f"idle CPU (server + projector, {args.idle_s:g} s): {live['idle_cpu_pct_no_page']:.2f}% with no page "
              f"open, {live['idle_cpu_pct_one_page']:.2f}% with one live page open")


if __name__ == "__main__":
    main()
