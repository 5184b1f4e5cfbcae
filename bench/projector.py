"""Benchmark: `warmup replay` against the floor of reading and parsing the same log.

Writes a synthetic log of realistic events (runs of 50 accounts x 6 steps, 8 accounts interleaved
as a concurrent runner writes them, ~10% of accounts failing), then measures, in one run:

- the floor: read every line and ``orjson.loads`` it, nothing else;
- ``warmup replay`` of the same log, as a user runs it (a subprocess), its own reported time and
  the whole command's wall time including interpreter start-up, and its peak RSS;
- events/s and the ratio replay/floor.

Goal (issue 2): ratio <= 2.5 and peak RSS <= 150 MB; issue 10: still <= 2.5 (aim 2.0) through the
generic projection runner, plus a line for core + ``steps`` + one trivial projection of one's own
(``bench/trivial_projection.py``).

    .venv/bin/python bench/projector.py            # 1,000,000 events
    .venv/bin/python bench/projector.py --events 200000
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_log import write_synthetic_log  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def floor(log: Path) -> tuple[float, int]:
    """Seconds to read and parse every line (the best of three), and the line count."""
    from warmup.events.reader import read_block

    best, count = float("inf"), 0
    for _ in range(3):
        started = time.perf_counter()
        fd = os.open(log, os.O_RDONLY)
        offset, count = 0, 0
        loads = orjson.loads
        while True:
            lines, offset_after = read_block(fd, offset)
            if not lines:
                break
            for data in lines:
                loads(data)
            count += len(lines)
            offset = offset_after
        os.close(fd)
        best = min(best, time.perf_counter() - started)
    return best, count


def replay_once(log: Path, db: Path, *extra: str) -> tuple[float, float, float]:
    """(seconds the replay reported, wall seconds of the whole command, peak RSS in MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "replay", "--log", str(log), "--db", str(db), *extra],
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"replay failed: {err}")
    match = re.search(r"in ([0-9.]+) s", err)
    reported = float(match.group(1)) if match else wall
    return reported, wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="replays to run; the best is reported")
    parser.add_argument("--skip-until", action="store_true", help="leave out the --until measurements")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="warmup-bench-") as tmp:
        log, db = Path(tmp) / "events.jsonl", Path(tmp) / "warmup.db"
        started = time.perf_counter()
        size = write_synthetic_log(log, args.events)
        print(f"log: {args.events:,} events, {size / 1e6:.0f} MB (written in {time.perf_counter() - started:.1f} s)")

        floor_s, count = floor(log)
        assert count == args.events
        print(f"floor (read + orjson.loads every line): {floor_s:.2f} s, {count / floor_s:,.0f} lines/s")

        results = [replay_once(log, db) for _ in range(args.runs)]
        reported, wall, rss = min(results)
        peak = max(r[2] for r in results)
        print(f"warmup replay: {reported:.2f} s ({args.events / reported:,.0f} events/s); "
              f"whole command incl. start-up {wall:.2f} s; peak RSS {peak:.0f} MB")
        ratio = reported / floor_s
        print(f"ratio replay/floor: {ratio:.2f} (goal <= 2.5); with start-up {wall / floor_s:.2f}")
        print(f"database: {db.stat().st_size / 1e6:.0f} MB")
        ok = ratio <= 2.5 and peak <= 150
        print("issue 2 goal (ratio <= 2.5, RSS <= 150 MB):", "MET" if ok else "MISSED")

        # Issue 10: the same replay with projections of one's own beside the core tables: registered
        # once (`project --projection` on an empty log), then rebuilt with them by a plain `replay`.
        trivial = "bench.trivial_projection:CompletedCount"
        empty = Path(tmp) / "empty.jsonl"
        empty.write_bytes(b"")
        for label, specs in (("core + a trivial projection", [trivial]),
                             ("core + steps + a trivial projection", ["steps", trivial])):
            extra_db = Path(tmp) / f"with-{len(specs)}.db"
            register = [sys.executable, "-m", "cli", "project", "-q", "--log", str(empty), "--db", str(extra_db)]
            for spec in specs:
                register += ["--projection", spec]
            subprocess.run(register, cwd=REPO, check=True)
            timed = [replay_once(log, extra_db) for _ in range(args.runs)]
            best = min(r[0] for r in timed)
            print(f"warmup replay, {label}: {best:.2f} s ({args.events / best:,.0f} events/s), "
                  f"ratio {best / floor_s:.2f}; peak RSS {max(r[2] for r in timed):.0f} MB")
            extra_db.unlink()
        if args.skip_until:
            return

        # Issue 6: a point-in-time replay must cost no more than 1.2x a full one.
        with open(log, "rb") as f:
            lines = f.readlines()
        worst = 1.0
        for fraction in (0.5, 1.0):
            instant = orjson.loads(lines[int(len(lines) * fraction) - 1])["ts"]
            until_s = min(replay_once(log, db, "--until", instant, "--force")[0] for _ in range(args.runs))
            worst = max(worst, until_s / reported)
            print(f"warmup replay --until (the first {fraction:.0%} of the log): {until_s:.2f} s, "
                  f"{until_s / reported:.2f}x a full replay")
        del lines
        print("issue 6 goal (--until <= 1.2x a full replay):", "MET" if worst <= 1.2 else "MISSED")


if __name__ == "__main__":
    main()
