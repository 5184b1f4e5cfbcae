"""The runner's writing side driven directly, without a browser: the Recorder over a real EventWriter.

Invariants checked (each test fails when its invariant is broken):

- every free-text field of every event type is scrubbed of secrets before it reaches the log;
- ids, paths, hashes, enumerations, the host and the task's record are written exactly as given,
  even when a (short) secret happens to occur inside them;
- an artifact file is never overwritten.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from warmup.events.envelope import EVENT_CLASSES
from warmup.events.writer import EventWriter
from warmup.runner.engine import AccountRun, Runner
from warmup.runner.progress import LineProgress
from warmup.runner.recorder import Recorder
from warmup.tasks import Scrubber, load_task

RUN_ID = "20261129T070000-1a2b3c"
LONG = "S3cret-Value-42"
SHORT = "demo"  # occurs inside the ids and paths below, which must keep it
TEXT = f"failed at http://127.0.0.1/?pw={LONG} for {SHORT} (quoted: {LONG!r}, json: {orjson.dumps(LONG).decode()})"

# Fields written as they are (this test's own list: a field moved in or out of the recorder's
# STRUCTURAL set without updating it fails here).
STRUCTURAL_VALUES: dict[str, Any] = {
    "account_id": "demo1",
    "task_id": "demo-task",
    "accounts": ["demo1", "demo2"],
    "task": {"id": "demo-task", "accounts": [{"id": "demo1", "storage_state": "states/demo1.json"}],
             "steps": [{"screenshot": "demo"}], "folder": "/srv/demo"},
    "path": f"{RUN_ID}/demo1/demo.png",
    "sha256": "de" * 32,
    "kind": "screenshot",
    "status": "FAILED",
    "action": "fill",
    "host": "demo-host",
    "resumed_from": "20261128T070000-demo00",
    "worker": "demo-host 4242",
    "trigger": "schedule",
    "scheduled_for": "2026-11-29T06:00:00.000000Z",
}
FREE_TEXT = {"task_name", "error", "url", "reason", "browser", "extracted.value", "name", "trace_dropped"}  # scrubbed
ENVELOPE = {"v", "id", "ts", "type", "run_id"}


def _value(name: str, kind: Any) -> Any:
    """A valid value for a field of an event class: text with secrets for every free-text string."""
    if name in STRUCTURAL_VALUES:
        return STRUCTURAL_VALUES[name]
    text = str(kind)
    if "dict[str, str]" in text:  # (step_finished.extracted: names to free text)
        return {"value": TEXT}
    if "str" in text:
        return TEXT
    if "bool" in text:
        return False
    if "float" in text:
        return 1.5
    return 1


def _events() -> list[tuple[str, dict[str, Any]]]:
    """One event of every type, every field filled, plus the extra fields the engine writes."""
    events = []
    for cls in EVENT_CLASSES:
        fields = {f.name: _value(f.name, f.type) for f in msgspec.structs.fields(cls) if f.name not in ENVELOPE}
        if cls.__struct_config__.tag == "run_started":
            fields.update(browser=f"Chromium {LONG}", headless=True)
        events.append((cls.__struct_config__.tag, fields))
    return events


@pytest.fixture
def written(tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "events.jsonl"
    writer = EventWriter(log)
    recorder = Recorder(writer, RUN_ID, Scrubber([LONG, SHORT]))
    for type_, fields in _events():
        assert recorder.emit(type_, **fields) is not None
    writer.close()
    return [orjson.loads(line) for line in log.read_bytes().splitlines()]


def test_every_free_text_field_of_every_event_type_is_scrubbed(written: list[dict[str, Any]]) -> None:
    assert [e["type"] for e in written] == [cls.__struct_config__.tag for cls in EVENT_CLASSES]
    seen_free = set()
    for event in written:
        for name, value in event.items():
            if name in ENVELOPE or name in STRUCTURAL_VALUES:
                continue
            if isinstance(value, dict):  # free text under names (step_finished.extracted)
                name, value = f"{name}.value", value["value"]
            if isinstance(value, str):
                seen_free.add(name)
                assert LONG not in value and SHORT not in value, (event["type"], name, value)
                assert "***" in value, (event["type"], name, value)
    assert seen_free == FREE_TEXT  # every free-text field of the schema was exercised
    # not a word of the secret anywhere else in the file than the structural fields
    for event in written:
        rest = {k: v for k, v in event.items() if k not in STRUCTURAL_VALUES}
        assert LONG not in orjson.dumps(rest).decode()


def test_ids_paths_and_the_task_record_are_written_as_they_are(written: list[dict[str, Any]]) -> None:
    checked = set()
    for event in written:
        for name, value in STRUCTURAL_VALUES.items():
            if name in event:
                assert event[name] == value, (event["type"], name, event[name])
                checked.add(name)
        assert event["run_id"] == RUN_ID
    assert checked == set(STRUCTURAL_VALUES)


class FakePage:
    """What a screenshot step uses of a page: ``screenshot()`` and ``url``."""

    url = "http://127.0.0.1/feed"

    def __init__(self, png: bytes) -> None:
        self.png = png

    async def screenshot(self, timeout: float) -> bytes:
        return self.png


def test_a_screenshot_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[[accounts]]\nid = "alice"\n[[steps]]\nscreenshot = "shot"\n')
    task = load_task(path, env={})
    log = tmp_path / "events.jsonl"
    writer = EventWriter(log)
    runner = Runner(
        task,
        Recorder(writer, RUN_ID, Scrubber([])),
        artifacts_dir=tmp_path / "artifacts",
        browser_path="/nonexistent",
        headless=True,
        concurrency=1,
        grace_s=0,
        progress=LineProgress(io.StringIO()),
    )
    st = AccountRun(task.accounts[0])
    assert runner._write_artifact(st, "shot", b"first") == (f"{RUN_ID}/alice/shot.png", None)
    relative, error = runner._write_artifact(st, "shot", b"second")
    assert error is not None and "already exists (not overwritten)" in error
    assert (tmp_path / "artifacts" / relative).read_bytes() == b"first"

    # a screenshot step whose file exists fails, and records no artifact for the file it did not write
    st.attempt = 1
    ok, error = asyncio.run(runner._step(st, FakePage(b"third"), task.steps[0]))  # type: ignore[arg-type]
    assert not ok and error is not None and "already exists (not overwritten)" in error
    assert (tmp_path / "artifacts" / relative).read_bytes() == b"first"
    writer.close()
    events = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert [(e["type"], e.get("ok")) for e in events] == [("step_finished", False)]
    assert (st.steps_ok, st.steps_failed) == (0, 1)
