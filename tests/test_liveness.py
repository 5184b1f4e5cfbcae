"""The liveness contract (``warmup.runs.liveness``): run and account leases, on flock files and on a
JetStream key-value bucket alike. Real files, a real nats-server, real processes killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from nats_servers import NatsServer, nats_server, stream_name  # noqa: F401

from warmup.log import open_log_backend
from warmup.runs.liveness import FileLiveness, Liveness, liveness_for

TTL_S = "2"


@pytest.fixture(params=["file", "nats"])
def spec(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("WARMUP_LEASE_TTL_S", TTL_S)
    if request.param == "file":
        yield str(tmp_path / "events.jsonl")
    else:
        server: NatsServer = request.getfixturevalue("nats_server")
        yield f"{server.url}/{stream_name('live')}"


def liveness(spec: str) -> Liveness:
    log = open_log_backend(spec)
    log.appender().close()  # the log exists (a stream is created)
    return liveness_for(log)


HOLDER = (
    "import sys\n"
    "from warmup.log import open_log_backend\n"
    "from warmup.runs.liveness import liveness_for\n"
    "live = liveness_for(open_log_backend(sys.argv[1]))\n"
    "live.run_lease(sys.argv[2]).acquire()\n"
    "live.account_lease('alice', sys.argv[2]).try_acquire()\n"
    "print('held', flush=True)\n"
    "sys.stdin.readline()\n"
)


def holder_process(spec: str, run_id: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, spec, run_id], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_run_lease_is_seen_while_held_and_gone_once_released(spec: str) -> None:
    live = liveness(spec)
    lease = live.run_lease("r1")
    assert live.run_holder("r1") is None
    lease.acquire()
    try:
        holder = live.run_holder("r1")
        assert holder is not None and holder.run_id == "r1" and holder.pid == os.getpid()
    finally:
        lease.release(remove=True)
    assert live.run_holder("r1") is None and not live.has_lease("r1")


def test_an_account_lease_has_one_holder_at_a_time(spec: str) -> None:
    live = liveness(spec)
    first, second = live.account_lease("alice", "r1"), live.account_lease("alice", "r2")
    assert first.try_acquire() is None and first.held
    try:
        holder = second.try_acquire()
        assert holder is not None and holder.run_id == "r1" and not second.held
    finally:
        first.release()
    assert second.try_acquire() is None
    second.release()


def test_a_killed_holder_leaves_a_dead_run_and_a_free_account(spec: str) -> None:
    live = liveness(spec)
    proc = holder_process(spec, "r9")
    assert live.run_holder("r9") is not None
    assert live.account_lease("alice", "mine").try_acquire() is not None  # held by the other process
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    lease = live.account_lease("alice", "mine")
    deadline = time.monotonic() + 30  # a flock goes at once; a bucket's key after its TTL
    while lease.try_acquire() is not None:
        assert time.monotonic() < deadline, "the dead holder's account lease never went"
        time.sleep(0.2)
    lease.release()
    assert live.run_holder("r9") is None


def test_a_lease_is_renewed_while_its_holder_lives(spec: str) -> None:
    live = liveness(spec)
    lease = live.account_lease("bob", "r1")
    assert lease.try_acquire() is None
    try:
        time.sleep(float(TTL_S) * 2.5)  # well past the TTL: renewed all along
        assert live.account_lease("bob", "r2").try_acquire() is not None
    finally:
        lease.release()


def test_the_file_leases_are_the_flock_files(tmp_path: Path) -> None:
    live = liveness_for(tmp_path / "events.jsonl")
    assert isinstance(live, FileLiveness) and not live.cross_host
    lease = live.run_lease("r1")
    lease.acquire()
    try:
        assert (tmp_path / "events.jsonl.d" / "runs" / "r1.lock").exists()
    finally:
        lease.release(remove=True)


def test_a_bucket_lease_taken_over_after_expiry_is_lost_by_its_old_holder(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("WARMUP_LEASE_TTL_S", TTL_S)
    from warmup.runs.kv import KvLiveness

    log = open_log_backend(f"{nats_server.url}/{stream_name('lost')}")
    log.appender().close()
    live = liveness_for(log)
    assert isinstance(live, KvLiveness) and live.cross_host
    lost: list[str] = []
    lease = live.account_lease("carol", "r1", on_lost=lost.append)
    assert lease.try_acquire() is None
    # Another process deletes the key and takes it (as after an expiry): the renewal must not overwrite it.
    bucket = live.bucket

    async def steal() -> None:
        kv = await bucket._bucket()
        await kv.delete("account.carol")
        await kv.create("account.carol", b'{"run_id": "thief", "host": "elsewhere", "pid": 1}')

    log.call(steal())  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20
    while not lost:
        assert time.monotonic() < deadline, "the lost lease was never noticed"
        time.sleep(0.1)
    assert "another process took it" in lost[0]
    holder = live.run_holder("r1")
    assert holder is None
    assert live.bucket.holder("account.carol").run_id == "thief"  # type: ignore[union-attr]
    lease.release()  # (does not delete the thief's key)
    assert live.bucket.holder("account.carol").run_id == "thief"  # type: ignore[union-attr]


def test_any_account_id_has_a_lease_of_its_own(spec: str) -> None:
    live = liveness(spec)
    ids = ["a.b.", "a..b", "x_y-z.1", "a.b"]  # all valid account ids; a bucket's keys are escaped
    leases = [live.account_lease(account, "r1") for account in ids]
    try:
        for lease in leases:
            assert lease.try_acquire() is None
        assert live.account_lease("a..b", "r2").try_acquire() is not None
    finally:
        for lease in leases:
            lease.release()
