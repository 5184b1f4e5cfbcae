"""Benchmark of ``warmup run``: the same accounts at concurrency 1 and 8, on the bundled example site.

Each account: goto feed.html, scroll 3 times with 200 ms pauses, click "Load more", wait 300 ms
(so about 0.9 s of each account is deliberate waiting). The site is served from examples/site/ by
the standard library on 127.0.0.1. The runner is the real CLI (``python -m cli run --no-project``)
with the default fsync-per-event log.

Reports wall time, accounts per minute, the speed-up of each concurrency over the first, and the
peak memory of the whole process tree (runner, Playwright driver, Chromium processes), sampled
every 100 ms from /proc as the sum of PSS (proportional set size: shared pages are split between
the processes that share them, so the sum is not inflated) and, for comparison, of RSS.

Goal (issue 3): speed-up >= 4x at concurrency 8 on a 2-core machine.

With ``--repeat N`` each concurrency runs N times and the fastest run counts (the machine is shared:
the fastest run is the one least disturbed by other work); every run's wall time is listed.

``--trace off on-failure`` runs every concurrency with each of the task's ``trace`` modes (the runs
interleaved, so a change in the machine's load hits both alike) and prints the cost of each mode
against the first. Goal (issue 11): ``on-failure`` within 15% of ``off`` (no account fails here, so
that is the cost of recording a trace that is then discarded).
Measured (issue 11; 2 cores shared with other work, 32 accounts, --repeat 2, best run of each),
on-failure against off, as the runner records it (actions, call logs, console, DOM snapshots and
network; no screencast): concurrency 1: +5.6% (43.84 s against 41.53 s) and +9.9% (43.04 / 39.16)
in two sessions; concurrency 8: +15.0% (10.89 / 9.47), +16.1% (11.45 / 9.86) and +18.8%
(13.59 / 11.44, --repeat 3, a busier machine): at or over the limit when the CPUs are the
bottleneck. Without the DOM snapshots (which also takes the network out of a Playwright trace,
leaving the actions and their call logs; ``ON_FAILURE_SNAPSHOTS`` in warmup/runner/trace.py) it
was +3.8% at 1 and -2.4% at 8; with the screencast as well, on a busier machine, +27% at 1 and
+65% at 8. On the quiet machine after the merge (no other work running): concurrency 1 +6.5%
(40.68 s against 38.21 s, --repeat 2), concurrency 8 +13.4% (10.38 s against 9.15 s, --repeat 3):
within the goal, with little to spare when the CPUs are the bottleneck.

Usage:  .venv/bin/python bench/runner.py [--accounts 32] [--concurrency 1 8] [--repeat 1] [--browser-path PATH]
        [--trace off on-failure] [--json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "examples" / "site"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_site() -> tuple[ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(SITE))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def task_text(base: str, accounts: int, trace: str = "on-failure") -> str:
    lines = ['id = "bench"', "account_timeout_s = 120", 'accounts_file = "accounts.csv"', f'trace = "{trace}"']
    lines += [
        f'[[steps]]\ngoto = "{base}/feed.html"',
        "[[steps]]\nscroll = 3\npause_ms = 200",
        '[[steps]]\nclick = "#more"',
        "[[steps]]\nwait_ms = 300",
    ]
    return "\n".join(lines) + "\n"


def _children(pid: int) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    kids: list[int] = []
    for tid in tasks:
        try:
            kids += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            pass
    return kids


def tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += _children(p)
    return found


def memory_of(pids: list[int]) -> tuple[int, int]:
    """(PSS, RSS) in bytes summed over ``pids``; processes that vanished count 0."""
    pss = rss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return pss, rss


def run_once(task: Path, workdir: Path, concurrency: int, browser_path: str | None, trace: str = "on-failure") -> dict:
    log = workdir / f"events-c{concurrency}-{trace}.jsonl"
    args = [sys.executable, "-m", "cli", "run", str(task), "--log", str(log), "--db", str(workdir / "unused.db"),
            "--artifacts", str(workdir / "artifacts"), "--concurrency", str(concurrency), "--no-project"]
    if browser_path:
        args += ["--browser-path", browser_path]
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_pss = peak_rss = peak_procs = 0
    while proc.poll() is None:
        pids = tree(proc.pid)
        pss, rss = memory_of(pids)
        peak_pss, peak_rss, peak_procs = max(peak_pss, pss), max(peak_rss, rss), max(peak_procs, len(pids))
        time.sleep(0.1)
    wall = time.perf_counter() - started
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"bench: warmup run exited {proc.returncode} at concurrency {concurrency}:\n{err}{out}")
    events = [json.loads(line) for line in log.read_text().splitlines()]
    completed = sum(1 for e in events if e["type"] == "account_finished" and e["status"] == "COMPLETED")
    accounts = len(events[0]["accounts"])
    return {
        "concurrency": concurrency,
        "trace": trace,
        "accounts": accounts,
        "completed": completed,
        "wall_s": round(wall, 2),
        "accounts_per_min": round(accounts / wall * 60, 1),
        "peak_pss_mb": round(peak_pss / 2**20, 1),
        "peak_rss_mb": round(peak_rss / 2**20, 1),
        "peak_processes": peak_procs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=32)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeat", type=int, default=1, help="runs per concurrency; the fastest counts")
    parser.add_argument("--browser-path")
    parser.add_argument("--trace", nargs="+", default=["on-failure"], choices=["off", "on-failure", "on"],
                        help="the task's trace mode(s) to measure; the first is the reference of the cost")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    opts = parser.parse_args()

    server, base = serve_site()
    try:
        with tempfile.TemporaryDirectory(prefix="warmup-bench-") as tmp:
            workdir = Path(tmp)
            tasks = {}
            for mode in opts.trace:
                tasks[mode] = workdir / f"bench-{mode}.toml"
                tasks[mode].write_text(task_text(base, opts.accounts, mode))
            (workdir / "accounts.csv").write_text("id\n" + "".join(f"acct{i:03d}\n" for i in range(opts.accounts)))
            results = []
            for c in opts.concurrency:
                runs: dict[str, list[dict]] = {mode: [] for mode in opts.trace}
                for _ in range(max(1, opts.repeat)):
                    for mode in opts.trace:  # interleaved: the load of the moment hits every mode alike
                        runs[mode].append(run_once(tasks[mode], workdir, c, opts.browser_path, mode))
                for mode in opts.trace:
                    best = min(runs[mode], key=lambda r: r["wall_s"])
                    best["all_wall_s"] = [r["wall_s"] for r in runs[mode]]
                    best["peak_pss_mb"] = max(r["peak_pss_mb"] for r in runs[mode])
                    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs[mode])
                    results.append(best)
    finally:
        server.shutdown()
    reference = {r["concurrency"]: r["wall_s"] for r in results if r["trace"] == opts.trace[0]}
    base_wall = results[0]["wall_s"]
    for r in results:
        r["speedup"] = round(base_wall / r["wall_s"], 2)
        r["trace_cost_pct"] = round((r["wall_s"] / reference[r["concurrency"]] - 1) * 100, 1)
    if opts.json:
        print(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))
        return
    print(f"warmup run: {opts.accounts} accounts x (goto, scroll 3 x 200 ms, click, wait 300 ms), "
          f"{os.cpu_count()} CPUs")
    print(f"{'concurrency':>11} {'trace':>10} {'wall s':>8} {'acc/min':>8} {'speed-up':>8} {'cost':>7} "
          f"{'peak PSS MB':>12} {'peak RSS MB':>12} {'procs':>6}  all runs (s)")
    for r in results:
        print(f"{r['concurrency']:>11} {r['trace']:>10} {r['wall_s']:>8.2f} {r['accounts_per_min']:>8.1f} "
              f"{r['speedup']:>7.2f}x {r['trace_cost_pct']:>+6.1f}% {r['peak_pss_mb']:>12.1f} "
              f"{r['peak_rss_mb']:>12.1f} {r['peak_processes']:>6}  {r['all_wall_s']}")
    last = [r for r in results if r["trace"] == opts.trace[0]][-1]
    goal = "met" if last["speedup"] >= 4 else "NOT met"
    print(f"goal: speed-up >= 4x at concurrency {last['concurrency']}: {goal} ({last['speedup']}x)")
    if "off" in opts.trace and "on-failure" in opts.trace:
        off = {r["concurrency"]: r["wall_s"] for r in results if r["trace"] == "off"}
        for r in results:
            if r["trace"] == "on-failure":
                cost = (r["wall_s"] / off[r["concurrency"]] - 1) * 100
                verdict = "met" if cost <= 15 else "NOT met"
                print(f"goal: trace on-failure within 15% of off at concurrency {r['concurrency']}: "
                      f"{verdict} ({cost:+.1f}%)")


if __name__ == "__main__":
    main()
