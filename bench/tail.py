"""Benchmark ``warmup tail -f``: append-to-print latency under load, and the CPU it costs.

A writer process appends ``--rate`` step_finished events a second for ``--seconds`` seconds with the
project's EventWriter; each event carries the wall time just before its append. A real
``warmup tail -f`` subprocess prints them; this script stamps each printed line as it arrives and
reports the latency percentiles, the tail process's CPU while following the load, and its CPU while
idle afterwards. Not a test: run it by hand and quote the figures.

    .venv/bin/python bench/tail.py                      # inotify, --json
    .venv/bin/python bench/tail.py --readable           # the readable format
    .venv/bin/python bench/tail.py --poll 0.1           # the polling fallback
    .venv/bin/python bench/tail.py --backward           # `tail -n 5` on a 1 GiB log vs a tiny one
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")

WRITER = textwrap.dedent(
    """
    import sys, time
    from warmup.events import EventWriter
    log, rate, seconds, fsync = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    total = int(rate * seconds)
    with EventWriter(log, fsync=fsync) as w:
        start = time.monotonic()
        for i in range(total):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t = time.time()
            w.emit("step_finished", run_id="bench", account_id="acct%d" % (i % 50), index=i, action="goto",
                   ok=True, duration_ms=1.0, error=None, url="http://127.0.0.1/b/%.6f" % t, bench_t=t)
        sys.stderr.write("writer: %d events in %.2f s\\n" % (total, time.monotonic() - start))
    """
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def run_backward(gib: float) -> None:
    """Time ``warmup tail -n 5`` (readable and --json) on a tiny log and on a ``gib`` GiB one."""
    from warmup.events import encode, make_event

    tmp = Path(tempfile.mkdtemp(prefix="warmup-bench-tail-n-"))
    small, big = tmp / "small.jsonl", tmp / "big.jsonl"
    lines = b"".join(
        encode(make_event("step_finished", run_id="r", account_id=f"a{i}", index=i, action="goto", ok=True,
                          duration_ms=1.0, error=None))
        for i in range(1000)
    )
    small.write_bytes(lines[: lines.index(b"\n", 5000) + 1])
    with open(big, "wb") as f:
        block = lines * 16
        while f.tell() < gib * (1 << 30):
            f.write(block)
    size = big.stat().st_size
    for label, path in (("tiny log", small), (f"{size / (1 << 30):.2f} GiB log", big)):
        for extra in ([], ["--json"], ["--account", "a999"]):
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "cli", "tail", "-n", "5", "--log", str(path), *extra],
                               cwd=REPO, check=True, stdout=subprocess.DEVNULL)
                times.append(time.perf_counter() - t0)
            print(f"  tail -n 5 {' '.join(extra):<16} {label:>14}: median {statistics.median(times) * 1000:.0f} ms "
                  "(process start included)")
    big.unlink()
    small.unlink()
    tmp.rmdir()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle following to measure")
    ap.add_argument("--fsync", choices=["always", "batch"], default="always")
    ap.add_argument("--readable", action="store_true", help="measure the readable format instead of --json")
    ap.add_argument("--poll", type=float, help="force the polling fallback at this interval (seconds)")
    ap.add_argument("--backward", action="store_true", help="time -n 5 on a big log instead of following")
    ap.add_argument("--gib", type=float, default=1.0, help="size of the big log for --backward")
    args = ap.parse_args()
    if args.backward:
        run_backward(args.gib)
        return

    tmp = Path(tempfile.mkdtemp(prefix="warmup-bench-tail-"))
    log = tmp / "events.jsonl"
    log.touch()
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    if args.poll:
        env["WARMUP_FOLLOW_POLL"] = str(args.poll)
    cmd = [sys.executable, "-m", "cli", "tail", "-f", "-n", "0", "--log", str(log)]
    if not args.readable:
        cmd.append("--json")
    tail = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE)
    assert tail.stdout is not None
    latencies: list[float] = []
    url = re.compile(rb"url=http://127\.0\.0\.1/b/([0-9.]+)")

    def read() -> None:
        for line in iter(tail.stdout.readline, b""):  # type: ignore[union-attr]
            now = time.time()
            if args.readable:
                m = url.search(line)
                sent = float(m.group(1)) if m else now
            else:
                sent = orjson.loads(line)["bench_t"]
            latencies.append(now - sent)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(1.0)  # let tail start and settle
    total = int(args.rate * args.seconds)
    cpu0, wall0 = cpu_seconds(tail.pid), time.monotonic()
    subprocess.run(
        [sys.executable, "-c", WRITER, str(log), str(args.rate), str(args.seconds), args.fsync], cwd=REPO, check=True
    )
    deadline = time.monotonic() + 10
    while len(latencies) < total and time.monotonic() < deadline:
        time.sleep(0.01)
    cpu1, wall1 = cpu_seconds(tail.pid), time.monotonic()
    time.sleep(args.idle)
    cpu2, wall2 = cpu_seconds(tail.pid), time.monotonic()
    tail.terminate()
    tail.wait()

    ms = sorted(x * 1000 for x in latencies)
    mode = f"polling every {args.poll}s" if args.poll else "inotify"
    fmt = "readable" if args.readable else "--json"
    load = f"writer {args.rate:.0f} events/s for {args.seconds:.0f} s, fsync={args.fsync}"
    print(f"warmup tail -f ({mode}, {fmt}); {load}")
    print(f"  printed {len(ms)}/{total} events")
    if ms:
        p50 = statistics.median(ms)
        p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        print(f"  append-to-print latency: p50 {p50:.2f} ms, p95 {p95:.2f} ms, p99 {p99:.2f} ms, max {ms[-1]:.2f} ms")
    print(f"  tail CPU under load: {100 * (cpu1 - cpu0) / (wall1 - wall0):.1f}% of one core")
    print(f"  tail CPU idle ({args.idle:.0f} s): {100 * (cpu2 - cpu1) / (wall2 - wall1):.2f}% of one core")
    log.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    main()
