"""``warmup report``'s HTML text, without a browser: every text field escaped, odd values bounded.

Fast companions of the browser tests in ``test_report.py``: they read the file the CLI wrote.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from projection_support import line, rows, warmup

from warmup.events.envelope import encode, make_event
from warmup.projector.projector import Projector


def marker(field: str) -> str:
    """Markup naming ``field``: it must reach the page as text only."""
    return f"<b id=m-{field}>'\"&"


def escaped(field: str) -> str:
    return f"&lt;b id=m-{field}&gt;&#x27;&quot;&amp;"


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(
        b"IEND", b"")


TEXT_FIELDS = (
    "run_id", "task_id", "task_name", "host", "resumed_from", "account", "account2", "action", "step_error",
    "url", "account_error", "retry_error", "shot_path", "failure_path", "reason", "log_name",
)


def test_every_text_field_of_the_report_is_escaped(tmp_path: Path) -> None:
    folder = tmp_path / marker("log_name").replace("/", "_")
    folder.mkdir()
    log, db, artifacts = folder / "events.jsonl", tmp_path / "warmup.db", tmp_path / "artifacts"
    run_id, a, b = marker("run_id"), marker("account"), marker("account2")
    shot_path, failure_path = f"r/{marker('shot_path')}.png", f"r/{marker('failure_path')}.png"
    (artifacts / "r").mkdir(parents=True)
    (artifacts / shot_path).write_bytes(tiny_png())  # inlined: its path is in alt text and caption
    n = iter(range(100))

    def emit(type_: str, **fields: object) -> bytes:
        return encode(make_event(type_, ts=f"2026-11-29T07:00:{next(n):02d}.000000Z", run_id=run_id, **fields))

    events = [
        emit("run_started", task_id=marker("task_id"), task_name=marker("task_name"), accounts=[a, b], steps=2,
             concurrency=2, host=marker("host"), pid=1, resumed_from=marker("resumed_from")),
        emit("account_started", account_id=a, attempt=1),
        emit("step_finished", account_id=a, index=0, action=marker("action"), ok=True, duration_ms=900.0,
             error=None),
        emit("artifact_saved", account_id=a, path=shot_path, sha256="", bytes=10, kind="screenshot", attempt=1),
        emit("step_finished", account_id=a, index=1, action="click", ok=False, duration_ms=1500.0,
             error=marker("step_error"), url=f"http://x/{marker('url')}"),
        emit("artifact_saved", account_id=a, path=failure_path, sha256="0" * 64, bytes=10, kind="failure",
             attempt=1),
        emit("account_finished", account_id=a, status="FAILED", error=marker("account_error"), attempt=1),
        emit("account_started", account_id=b, attempt=1),
        emit("account_finished", account_id=b, status="FAILED", error=marker("retry_error"), attempt=1,
             retrying=True),
        emit("account_started", account_id=b, attempt=2),
        emit("account_finished", account_id=b, status="COMPLETED", error=None, attempt=2),
        emit("run_finished", status="INTERRUPTED", reason=marker("reason")),
    ]
    log.write_bytes(b"".join(events))
    with Projector(log, db) as projector:
        assert projector.catch_up().rejected == 0
    out = tmp_path / "report.html"
    result = warmup("report", run_id, "--log", log, "--db", db, "--artifacts", artifacts, "-o", out)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "<b id=m-" not in text, text[max(0, text.find("<b id=m-") - 200):text.find("<b id=m-") + 100]
    assert "<script" not in text
    missing = [f for f in TEXT_FIELDS if escaped(f) not in text]
    assert not missing, f"fields not shown (or not escaped as expected): {missing}"
    assert "<img id=" in text  # the screenshot was inlined, its alt text escaped


# -- odd values in valid lines ---------------------------------------------------------------------
def report_of(tmp_path: Path, lines: list[bytes], run_id: str = "r1") -> tuple[str, str]:
    log, db, out = tmp_path / "events.jsonl", tmp_path / "warmup.db", tmp_path / "report.html"
    log.write_bytes(b"".join(lines))
    assert warmup("project", "--log", log, "--db", db).returncode == 0
    result = warmup("report", run_id, "--log", log, "--db", db, "-o", out, timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return out.read_text(), result.stdout


def grid_lines(text: str) -> int:
    return len(re.findall(r"<span style='left:[^']*'>\+", text))


def run_with(step_ts: str, duration_ms: float, started: str = "2026-11-29T07:00:00.000000Z") -> list[bytes]:
    return [
        line("run_started", started, run_id="r1", task_id="t", task_name="t", accounts=["a"], steps=1,
             concurrency=1, host="h", pid=1),
        line("account_started", started, run_id="r1", account_id="a", attempt=1),
        line("step_finished", step_ts, run_id="r1", account_id="a", index=0, action="goto", ok=False,
             duration_ms=duration_ms, error="boom"),
        line("account_finished", "2026-11-29T07:00:05.000000Z", run_id="r1", account_id="a", status="FAILED",
             error="boom", attempt=1),
        line("run_finished", "2026-11-29T07:00:06.000000Z", run_id="r1", status="FAILED"),
    ]


def test_a_duration_of_1e18_ms_neither_hangs_nor_stretches_the_timeline(tmp_path: Path) -> None:
    text, _ = report_of(tmp_path, run_with("2026-11-29T07:00:04.000000Z", 1e18))
    assert "1 line(s) of it not readable, skipped" in text  # the projector's rule: longer than the run
    assert rows(tmp_path / "warmup.db", "SELECT steps_failed FROM run_accounts") == [{"steps_failed": 0}]
    assert 1 <= grid_lines(text) <= 12


def test_a_step_in_year_1_with_a_duration_renders(tmp_path: Path) -> None:
    text, _ = report_of(tmp_path, run_with("0001-01-01T00:00:00.001000Z", 5.0))
    assert "s from 1970-01-01 UTC" in text  # its start is before year 1: shown as epoch seconds
    assert 1 <= grid_lines(text) <= 12  # two thousand years, a dozen grid lines


def test_a_run_started_in_year_1_renders(tmp_path: Path) -> None:
    text, _ = report_of(tmp_path, run_with("2026-11-29T07:00:04.000000Z", 3_000.0,
                                           started="0001-01-01T00:00:00.000000Z"))
    assert 1 <= grid_lines(text) <= 12 and "boom" in text
