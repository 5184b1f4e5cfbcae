"""Benchmark (issue 12, point 2): accounts/min of 1, 2 and 3 ``warmup worker`` processes on one machine.

One nats-server (R1) on a free loopback port, the example site (examples/site/) served on another;
for each worker count a fresh stream, that many ``warmup worker --concurrency C`` processes, and
``warmup run TASK --workers`` of ``--accounts`` accounts (goto feed.html, scroll 3 x 200 ms, click,
wait 300 ms: bench/runner.py's account). Wall time is the run command's, from start to its exit;
accounts/min = accounts / wall. How evenly the accounts spread is read from the log
(``account_started.worker``). For comparison, plain ``warmup run`` (no workers, a file log) at the
same total concurrency (workers x C).

Two cores cap all of this: each worker has its own Chromium, so 3 workers at concurrency 2 run 6
pages on 2 cores, as one ``warmup run --concurrency 6`` would, plus two more browsers' overhead. On
one machine more workers cannot go faster than the CPUs; the point of workers is more machines.

    .venv/bin/python bench/workers.py [--accounts 24] [--concurrency 2] [--workers 1 2 3]
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
# bench/ is first on sys.path (a script's folder), and bench/nats.py would shadow the nats client there.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from warmup.log import open_log_backend  # noqa: E402


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def task_text(site: str, accounts: int, concurrency: int) -> str:
    people = "\n".join(f'[[accounts]]\nid = "b{i:03d}"\n' for i in range(accounts))
    return f"""id = "bench-workers"
concurrency = {concurrency}
timeout_ms = 15000
{people}
[[steps]]
goto = "{site}/feed.html"

[[steps]]
scroll = 3
pause_ms = 200

[[steps]]
click = "#more"

[[steps]]
wait_ms = 300
"""


def start_nats(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    binary = Path(sys.executable).parent / "nats-server"
    proc = subprocess.Popen([str(binary), "-js", "-sd", str(root / "js"), "-a", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("nats-server did not start") from None
            time.sleep(0.1)
    return proc, f"nats://127.0.0.1:{port}"


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("WARMUP_")}
    out["PYTHONPATH"] = str(REPO)
    return out


def with_workers(url: str, task: Path, n: int, concurrency: int, root: Path) -> tuple[float, Counter[str]]:
    cli = [sys.executable, "-m", "cli"]
    workers = [subprocess.Popen([*cli, "worker", "--log", url, "--concurrency", str(concurrency),
                                 "--artifacts", str(root / f"art{i}")],
                                cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for i in range(n)]
    try:
        time.sleep(3)  # (each worker's browser is up before the clock starts, as on hosts that wait for work)
        began = time.monotonic()
        done = subprocess.run([*cli, "run", str(task), "--log", url, "--workers", "--no-project"], cwd=REPO,
                              env=env(), capture_output=True, text=True)
        wall = time.monotonic() - began
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
    finally:
        for w in workers:
            w.send_signal(signal.SIGINT)
        for w in workers:
            w.wait(60)
    spread: Counter[str] = Counter()
    log = open_log_backend(url)
    with log.reader() as reader:
        position = log.START
        while (batch := reader.read(position, 1 << 20)).lines:
            position = batch.end
            for line in batch.lines:
                event = orjson.loads(line)
                if event["type"] == "account_started":
                    spread[event["worker"]] += 1
    return wall, spread


def plain(task: Path, concurrency: int, root: Path) -> float:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cli", "run", str(task), "--log", str(root / "plain.jsonl"),
                           "--no-project", "--concurrency", str(concurrency), "--artifacts", str(root / "plain")],
                          cwd=REPO, env=env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=2, help="per worker")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="warmup-bench-workers-") as tmp:
        root = Path(tmp)
        handler = functools.partial(_Quiet, directory=str(REPO / "examples" / "site"))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        site = f"http://127.0.0.1:{server.server_address[1]}"
        nats, base = start_nats(root)
        try:
            print(f"{args.accounts} accounts; each worker at concurrency {args.concurrency}; 2 cores")
            print("| workers | wall | accounts/min | accounts per worker "
                  "| plain `warmup run` at the same concurrency |")
            print("|---|---|---|---|---|")
            for n in args.workers:
                task = root / f"task{n}.toml"
                task.write_text(task_text(site, args.accounts, args.concurrency * n))
                wall, spread = with_workers(f"{base}/W{n}", task, n, args.concurrency, root)
                base_wall = plain(task, args.concurrency * n, root)
                per = " / ".join(str(c) for c in sorted(spread.values(), reverse=True))
                print(f"| {n} | {wall:.1f} s | {args.accounts / wall * 60:.0f} | {per} | "
                      f"{base_wall:.1f} s ({args.accounts / base_wall * 60:.0f}/min) |", flush=True)
        finally:
            nats.send_signal(signal.SIGTERM)
            nats.wait(20)
            server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
