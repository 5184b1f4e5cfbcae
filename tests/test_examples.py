"""The bundled examples, run as a user runs them: examples/site served over HTTP, the task rewritten
to its port (as examples/demo.sh does), the CLI in a subprocess, real Chromium."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import REPO, Workdir, cli_env, warmup
from serving import serving_examples

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def example_site() -> Iterator[str]:
    with serving_examples() as base:
        yield base


def test_the_admin_example_logs_in_only_when_needed(example_site: str, work: Workdir) -> None:
    text = (REPO / "examples" / "admin.toml").read_text().replace("http://127.0.0.1:8000", example_site)
    task = work.task(text, "admin.toml")
    env = cli_env(WARMUP_DEMO_PASSWORD=PASSWORD)
    assert warmup("validate", str(task), env=env).returncode == 0

    first = warmup(*work.run_args(task), env=env)
    assert first.returncode == 1, first.stderr  # mallory is not staff
    runs: list[list[dict]] = [work.events()]
    began = time.monotonic()
    second = warmup(*work.run_args(task), env=env)
    assert second.returncode == 1, second.stderr
    assert time.monotonic() - began < 60
    everything = work.events()
    runs.append(everything[len(runs[0]):])

    for number, events in enumerate(runs, start=1):
        finished = {e["account_id"]: e for e in events if e["type"] == "account_finished"}
        assert {a: f["status"] for a, f in finished.items()} == {
            "alice": "COMPLETED", "bob": "COMPLETED", "carol": "COMPLETED", "mallory": "FAILED"}
        # a refused login fails at its click, with the site's message, long before the 5 s timeout
        assert finished["mallory"]["error"] == (
            "step 5 (click) in group 'login': fail_if '.errornote' appeared: "
            "'Please enter the correct username and password for a staff account.'")
        click = next(e for e in events if e["type"] == "step_finished" and e["account_id"] == "mallory"
                     and e["index"] == 4)
        assert click["duration_ms"] < 4000
        for account in ("alice", "bob", "carol"):
            steps = [e for e in events if e["type"] == "step_finished" and e["account_id"] == account]
            assert len(steps) == 16 and all(s["ok"] for s in steps)
            skipped = [s["index"] for s in steps if s.get("skipped")]
            # the login group (steps 3 to 7): run when signed out, skipped with the saved state
            assert skipped == ([] if number == 1 else [2, 3, 4, 5, 6]), (number, account)
            assert all(s["duration_ms"] < 1000 for s in steps if s.get("skipped"))  # no timeout spent
            extracted = [s["extracted"] for s in steps if s.get("extracted")]
            assert extracted == [{"order": "order.html?id=1042"}]
    assert PASSWORD not in work.log.read_text()
    assert (work.root / "states" / "admin-alice.json").exists()
