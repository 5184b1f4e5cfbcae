"""Benchmark of ``warmup report``: file size, and how fast the page loads in headless Chromium.

For each size (default 50 and 500 accounts) it writes a synthetic run with ``EventWriter`` (6 steps
per account, 8 accounts at a time, about 10% of the accounts failing at a random step, a few of them
retried), with a real PNG failure screenshot per failed attempt (headless Chromium photographs a
1280x720 page, as the runner does). Then it projects the log (``warmup project``), writes the report
(``warmup report``, timed as a user runs it) and opens the file in headless Chromium:

- load: ``page.goto(file_url, wait_until="load")``, wall time, plus the navigation timing's
  ``loadEventEnd`` (from navigation start to the end of the load event);
- load + layout + paint: wall time until the page has loaded, a forced layout of the whole document
  (reading ``document.body.scrollHeight``) has returned, and a frame was painted: the goal's figure;
- every image decoded: the same plus decoding every inlined screenshot (they are lazy: one who
  scrolls through them all pays this, spread over the scrolling).

Each page load runs ``--repeat`` times in a fresh page; the best and the median are printed.

``--noise N`` first writes N events of other runs (``bench/synthetic_log.py``) to the log, to see
what scanning a big log for one run's timings costs.

Goals (issue 6): a 500-account report renders in Chromium in under 2 s; a 50-account run plus its
screenshots is a few hundred KB.

Usage:  .venv/bin/python bench/report.py [--accounts 50 500] [--repeat 5] [--noise 0] [--json]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from synthetic_log import synthetic_events  # noqa: E402

from warmup.browser import find_browser, launch_args  # noqa: E402
from warmup.events import EventWriter  # noqa: E402
from warmup.events.envelope import encode, make_event  # noqa: E402

ACTIONS = ("goto", "scroll", "click", "fill", "wait_ms", "expect_title")
STEPS = 6
CONCURRENCY = 8


class Screenshots:
    """Distinct real screenshots of a 1280x720 page, one per call, like the runner's failure screenshots.

    Every one differs (the report inlines identical images only once, which would flatter its size).
    """

    def __init__(self, browser: Browser) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 720})
        self.cdp = self.page.context.new_cdp_session(self.page)
        self.taken = 0

    def __call__(self) -> tuple[bytes, bytes]:
        """(the full-size PNG, its half-scale thumbnail), as the runner saves a failure's."""
        i = self.taken
        self.taken += 1
        posts = "".join(f"<article><h2>Post {i}-{k}</h2><p>{'Lorem ipsum dolor sit amet. ' * 12}</p></article>"
                        for k in range(6))
        self.page.set_content(f"<body style='font:15px sans-serif;margin:24px'><h1>Feed {i}</h1>{posts}"
                              "<p style='color:#b00'>Timeout 10000ms exceeded waiting for #feed .item</p></body>")
        thumb = self.cdp.send("Page.captureScreenshot", {
            "format": "png", "clip": {"x": 0, "y": 0, "width": 1280, "height": 720, "scale": 0.5}})
        return self.page.screenshot(), base64.b64decode(thumb["data"])


def write_run(log: Path, artifacts: Path, accounts: int, screenshot: Screenshots, seed: int = 6) -> tuple[str, dict]:
    """One run of ``accounts`` accounts appended to ``log``; returns its id and what it contains."""
    rnd = random.Random(seed)
    run_id = f"bench-report-{accounts}"
    clock = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
    stats = {"events": 0, "failed_attempts": 0, "retried": 0, "screenshot_bytes": 0}

    def ts(at: datetime) -> str:
        return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    pending: list[tuple[datetime, dict]] = []  # (when, event fields); sorted and written at the end
    names = [f"acct-{i:04d}@example.test" for i in range(accounts)]
    pending.append((clock, {"type": "run_started", "task_id": "bench", "task_name": "Bench report",
                            "accounts": names, "steps": STEPS, "concurrency": CONCURRENCY,
                            "host": "bench", "pid": 4242}))
    slots = [clock + timedelta(milliseconds=5 * i) for i in range(CONCURRENCY)]
    for name in names:
        fails = rnd.random() < 0.10
        attempts = 2 if fails and rnd.random() < 0.4 else 1  # some failing accounts were retried
        slot = min(range(CONCURRENCY), key=lambda s: slots[s])  # a retry follows in the same slot
        for attempt in range(1, attempts + 1):
            at = slots[slot]
            pending.append((at, {"type": "account_started", "account_id": name, "attempt": attempt}))
            fail_this = fails if attempt == 1 else rnd.random() < 0.5
            fail_at = rnd.randrange(STEPS) if fail_this else -1
            error = None
            for index in range(STEPS):
                ms = round(rnd.lognormvariate(5.3, 0.9), 3)  # median ~200 ms, a long tail
                ok = index != fail_at
                at += timedelta(milliseconds=ms + rnd.uniform(1, 10))
                err = None if ok else f"Timeout 10000ms exceeded waiting for #item-{index}"
                pending.append((at, {"type": "step_finished", "account_id": name, "index": index,
                                     "action": ACTIONS[index], "ok": ok, "duration_ms": ms, "error": err,
                                     "attempt": attempt, "url": None if ok else f"https://app.example.test/p/{index}"}))
                if not ok:
                    error = f"step {index + 1} ({ACTIONS[index]}): {err}"
                    break
            if error:
                png, thumb = screenshot()
                for kind, rel, data in (("failure", f"{run_id}/{name}/failure-{attempt}.png", png),
                                        ("thumbnail", f"{run_id}/{name}/failure-{attempt}.thumb.png", thumb)):
                    (artifacts / rel).parent.mkdir(parents=True, exist_ok=True)
                    (artifacts / rel).write_bytes(data)
                    at += timedelta(milliseconds=80)
                    pending.append((at, {"type": "artifact_saved", "account_id": name, "path": rel,
                                         "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                                         "kind": kind, "attempt": attempt}))
                stats["failed_attempts"] += 1
                stats["screenshot_bytes"] += len(png)
                stats["thumbnail_bytes"] = stats.get("thumbnail_bytes", 0) + len(thumb)
            retrying = bool(error) and attempt < attempts
            stats["retried"] += retrying
            at += timedelta(milliseconds=20)
            pending.append((at, {"type": "account_finished", "account_id": name,
                                 "status": "FAILED" if error else "COMPLETED", "error": error,
                                 "attempt": attempt, "retrying": retrying}))
            slots[slot] = at + timedelta(milliseconds=30)
            if not error:
                break
    end = max(slots)
    pending.append((end, {"type": "run_finished", "status": "FAILED", "reason": None}))
    pending.sort(key=lambda p: p[0])
    with EventWriter(log, fsync="batch") as writer:
        for at, fields in pending:
            type_ = fields.pop("type")
            writer.append(make_event(type_, ts=ts(at), run_id=run_id, **fields))
    stats["events"] = len(pending)
    return run_id, stats


def text_weight(report: Path) -> int:
    """The report's bytes without its inlined images (the data: URIs)."""
    data = report.read_bytes()
    return len(re.sub(rb"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", b"", data))


def cli(*args: str) -> tuple[float, str]:
    """Run the CLI as a user does; its wall time and its output (stdout and stderr)."""
    t = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"warmup {args[0]} failed: {result.stderr.strip()}")
    return time.perf_counter() - t, result.stdout + result.stderr


def measure_load(browser: Browser, path: Path, repeat: int) -> dict[str, list[float]]:
    url = path.resolve().as_uri()
    out: dict[str, list[float]] = {"load_s": [], "load_event_end_s": [], "load_layout_paint_s": [],
                                   "all_images_decoded_s": []}
    for _ in range(repeat):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        t = time.perf_counter()
        page.goto(url, wait_until="load")
        loaded = time.perf_counter() - t
        # force a layout of the whole page, then wait for the next painted frame
        page.evaluate("""() => new Promise(done => {
            void document.body.scrollHeight;
            requestAnimationFrame(() => requestAnimationFrame(() => done()));
        })""")
        out["load_layout_paint_s"].append(time.perf_counter() - t)
        out["load_s"].append(loaded)
        # what the lazy images cost when someone scrolls through them all: decode every one
        page.evaluate("() => Promise.all([...document.images].map(i => { i.loading = 'eager'; return i.decode(); }))")
        out["all_images_decoded_s"].append(time.perf_counter() - t)
        out["load_event_end_s"].append(
            page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000
        )
        lanes = page.locator(".lane").count()
        page.close()
    out["lanes"] = [lanes]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--noise", type=int, default=0, help="events of other runs written to the log first")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="warmup-bench-report-") as tmp:
        browser = pw.chromium.launch(executable_path=find_browser(headless=True), args=launch_args())
        screenshot = Screenshots(browser)
        for n in args.accounts:
            root = Path(tmp) / f"r{n}"
            (root / "artifacts").mkdir(parents=True)
            log, db, out = root / "events.jsonl", root / "warmup.db", root / "report.html"
            if args.noise:
                with open(log, "wb") as f:
                    f.writelines(encode(e) for e in synthetic_events(args.noise))
            run_id, stats = write_run(log, root / "artifacts", n, screenshot)
            if "invalid" in cli("project", "--log", str(log), "--db", str(db))[1]:
                sys.exit("the projector rejected lines of the synthetic log: the generator is wrong")
            report_s, _ = cli("report", run_id, "--log", str(log), "--db", str(db),
                           "--artifacts", str(root / "artifacts"), "-o", str(out))
            timings = measure_load(browser, out, args.repeat)
            assert timings.pop("lanes") == [n], "the report does not have one lane per account"
            results.append({
                "accounts": n, "events": stats["events"], "noise_events": args.noise,
                "failed_attempts": stats["failed_attempts"], "retried": stats["retried"],
                "screenshots_kb": round(stats["screenshot_bytes"] / 1024),
                "thumbnails_kb": round(stats.get("thumbnail_bytes", 0) / 1024),
                "report_kb": round(out.stat().st_size / 1024),
                "report_without_images_kb": round(text_weight(out) / 1024),
                "report_command_s": round(report_s, 3),
                **{f"{k}_best": round(min(v), 3) for k, v in timings.items()},
                **{f"{k}_median": round(statistics.median(v), 3) for k, v in timings.items()},
            })
        browser.close()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        verdict = "ok" if r["load_layout_paint_s_median"] < 2 else "OVER the 2 s goal"
        print(
            f"{r['accounts']} accounts ({r['events']} events, {r['failed_attempts']} failed attempts with "
            f"screenshots of {r['screenshots_kb']} KB (thumbnails {r['thumbnails_kb']} KB), {r['retried']} retried"
            + (f", log with {r['noise_events']} other events" if r["noise_events"] else "")
            + f"): report {r['report_kb']} KB ({r['report_without_images_kb']} KB without the inlined screenshots), "
            f"`warmup report` {r['report_command_s']:.2f} s\n"
            f"  Chromium: load {r['load_s_median']:.3f} s (best {r['load_s_best']:.3f}), "
            f"loadEventEnd {r['load_event_end_s_median']:.3f} s, "
            f"load+layout+paint {r['load_layout_paint_s_median']:.3f} s "
            f"(best {r['load_layout_paint_s_best']:.3f}): {verdict} (goal < 2 s); "
            f"every image decoded too: {r['all_images_decoded_s_median']:.3f} s"
        )


if __name__ == "__main__":
    main()
