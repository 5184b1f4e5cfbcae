"""``GET /api/events`` and its ``EventHub``: a real uvicorn on 127.0.0.1, a real log, an httpx client.

Each test serves a small Starlette app with only the events route; its lifespan starts and stops
the hub (``StreamingServer`` stops it as shutdown begins). Events are appended with the real
appender (a file log, or a NATS stream for the resume test) while clients stream them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from conftest import REPO, cli_env
from nats_servers import NatsServer, nats_server, stream_name  # noqa: F401
from starlette.applications import Starlette
from starlette.routing import Route

from warmup.log import FileLog, Line, Log, as_log, open_log_backend
from warmup.log.base import LogAppender, LogFollower
from warmup.serve import hub as hub_module
from warmup.serve import stream
from warmup.serve.hub import EventHub
from warmup.serve.stream import StreamingServer, events_endpoint

RUN = "20261129T060000-aaaaaa"
OTHER = "20261129T060001-bbbbbb"
DEADLINE_S = 30.0


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# -- the server ----------------------------------------------------------------------------------
@dataclass
class Served:
    url: str
    hub: EventHub
    server: StreamingServer
    thread: threading.Thread


@contextlib.contextmanager
def serve(log: Log, *, slow_callback_s: float | None = None, **hub_options: Any) -> Iterator[Served]:
    """The events route over ``log`` on a free loopback port, in a background thread; with
    ``slow_callback_s``, its loop in debug mode, logging any callback that takes longer."""
    hub = EventHub(log, **hub_options)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if slow_callback_s is not None:
            loop = asyncio.get_running_loop()
            loop.set_debug(True)
            loop.slow_callback_duration = slow_callback_s
        hub.start()
        app.state.hub = hub
        try:
            yield
        finally:
            await hub.aclose()

    app = Starlette(routes=[Route("/api/events", events_endpoint)], lifespan=lifespan)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    server = StreamingServer(config, hub)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), "uvicorn to start")
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(f"http://127.0.0.1:{port}/api/events", hub, server, thread)
    finally:
        server.should_exit = True
        thread.join(DEADLINE_S)
        assert not thread.is_alive(), "uvicorn did not shut down"


# -- the log -------------------------------------------------------------------------------------
@dataclass
class Writer:
    """Appends valid events of a few runs with the real appender; remembers their ids."""

    appender: LogAppender
    steps: dict[str, int] = field(default_factory=dict)

    def started(self, run_id: str) -> dict[str, Any]:
        self.steps[run_id] = 0
        return self.appender.emit(
            "run_started", run_id=run_id, task_id="t", task_name="T", accounts=["a"], steps=100, concurrency=1,
            host="h", pid=1,
        )

    def step(self, run_id: str, *, pad: int = 0) -> dict[str, Any]:
        self.steps[run_id] += 1
        fields: dict[str, Any] = {"url": "x" * pad} if pad else {}
        return self.appender.emit(
            "step_finished", run_id=run_id, account_id="a", index=self.steps[run_id], action="open", ok=True,
            duration_ms=1.0, error=None, **fields,
        )

    def finished(self, run_id: str) -> dict[str, Any]:
        return self.appender.emit("run_finished", run_id=run_id, status="COMPLETED")


@pytest.fixture
def file_log(tmp_path: Path) -> Iterator[tuple[Log, Writer]]:
    log = as_log(tmp_path / "events.jsonl")
    appender = log.appender()
    try:
        yield log, Writer(appender)
    finally:
        appender.close()


def log_events(log: Log, run_id: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """(position just past the line, event) of each valid event in the log, in order."""
    out: list[tuple[int, dict[str, Any]]] = []
    with log.reader() as reader:
        position = log.START
        while (batch := reader.read(position, 1 << 20)).lines:
            for line, end in zip(batch.lines, reader.positions(batch)[1:], strict=True):
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(event, dict) and "id" in event and (run_id is None or event.get("run_id") == run_id):
                    out.append((end, event))
            position = batch.end
    return out


# -- the client ----------------------------------------------------------------------------------
class SseStream:
    """An open SSE response, read event by event: ``next()`` -> (id, event) or None at its end."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()
        self.comments: list[str] = []
        self.retry: str | None = None

    def next(self) -> tuple[int, dict[str, Any]] | None:
        ident: str | None = None
        data: list[str] = []
        for line in self.lines:
            if line == "":
                if data:
                    assert ident is not None, "an event without an id"
                    return int(ident), orjson.loads("\n".join(data))
                continue
            if line.startswith(":"):
                self.comments.append(line)
            elif line.startswith("retry: "):
                self.retry = line[len("retry: "):]
            elif line.startswith("id: "):
                ident = line[len("id: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
            else:
                raise AssertionError(f"unexpected SSE line {line!r}")
        return None

    def until(self, done: Callable[[dict[str, Any]], bool]) -> list[tuple[int, dict[str, Any]]]:
        got: list[tuple[int, dict[str, Any]]] = []
        while (item := self.next()) is not None:
            got.append(item)
            if done(item[1]):
                return got
        raise AssertionError(f"the stream ended before the awaited event (got {len(got)})")

    def take(self, n: int) -> list[tuple[int, dict[str, Any]]]:
        got = []
        for _ in range(n):
            item = self.next()
            assert item is not None, f"the stream ended after {len(got)} of {n} events"
            got.append(item)
        return got

    def rest(self) -> list[tuple[int, dict[str, Any]]]:
        got = []
        while (item := self.next()) is not None:
            got.append(item)
        return got


@contextlib.contextmanager
def sse(url: str, headers: dict[str, str] | None = None, **params: Any) -> Iterator[SseStream]:
    with httpx.stream("GET", url, params=params, headers=headers or {}, timeout=DEADLINE_S) as response:
        assert response.status_code == 200, response.read()
        yield SseStream(response)


def is_finished(event: dict[str, Any]) -> bool:
    return event["type"] == "run_finished"


# -- tests ---------------------------------------------------------------------------------------
def test_run_history_then_live_in_order(file_log: tuple[Log, Writer]) -> None:
    log, w = file_log
    w.started(OTHER)
    w.started(RUN)
    w.step(RUN)
    w.step(OTHER)
    with serve(log) as s, sse(s.url, run=RUN, follow=1) as events:
        headers = events.response.headers
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["cache-control"] == "no-cache"
        assert headers["x-accel-buffering"] == "no"
        history = events.take(2)
        assert events.retry == "1000"
        wait_until(lambda: s.hub.subscribers == 1, "the stream to subscribe")
        for _ in range(3):
            w.step(RUN)
            w.step(OTHER)
        w.finished(OTHER)
        w.finished(RUN)
        live = events.until(is_finished)
    got = history + live
    assert got == log_events(log, RUN)
    assert [event["type"] for _, event in got] == ["run_started"] + ["step_finished"] * 4 + ["run_finished"]
    assert [p for p, _ in got] == sorted({p for p, _ in got})


def test_follow_0_ends_after_the_history_sse_and_ndjson(file_log: tuple[Log, Writer]) -> None:
    log, w = file_log
    w.started(RUN)
    w.started(OTHER)
    w.step(RUN)
    w.finished(RUN)
    with serve(log) as s:
        with sse(s.url, run=RUN) as events:
            got = events.rest()
        assert got == log_events(log, RUN)

        response = httpx.get(s.url, params={"run": RUN, "follow": "0"}, headers={"Accept": "application/x-ndjson"},
                             timeout=DEADLINE_S)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        rows = [orjson.loads(line) for line in response.content.splitlines()]
        assert [(row["position"], row["event"]) for row in rows] == log_events(log, RUN)
        assert all(set(row) == {"position", "event"} for row in rows)

        # after=P: what follows P, the line at P excluded (no run: every run's events)
        everything = log_events(log)
        response = httpx.get(s.url, params={"after": str(everything[1][0])}, timeout=DEADLINE_S,
                             headers={"Accept": "application/x-ndjson"})
        assert [(r["position"], r["event"]) for r in map(orjson.loads, response.content.splitlines())] \
            == everything[2:]


def test_ndjson_live(file_log: tuple[Log, Writer]) -> None:
    log, w = file_log
    w.started(RUN)
    with serve(log) as s, httpx.stream("GET", s.url, params={"run": RUN, "follow": "1"},
                                       headers={"Accept": "application/x-ndjson"}, timeout=DEADLINE_S) as response:
        lines = response.iter_lines()
        first = orjson.loads(next(lines))
        wait_until(lambda: s.hub.subscribers == 1, "the stream to subscribe")
        w.step(RUN)
        w.finished(RUN)
        rows = [first]
        for line in lines:
            if line:
                rows.append(orjson.loads(line))
            if rows[-1]["event"]["type"] == "run_finished":
                break
    assert [(row["position"], row["event"]) for row in rows] == log_events(log, RUN)


def test_tail_and_types(file_log: tuple[Log, Writer]) -> None:
    log, w = file_log
    w.started(RUN)
    for _ in range(5):
        w.step(RUN)
    w.finished(RUN)
    everything = log_events(log)
    with serve(log) as s:
        with sse(s.url, tail=3) as events:
            assert events.rest() == everything[-3:]
        with sse(s.url, run=RUN, types="run_started,run_finished") as events:
            assert [e["type"] for _, e in events.rest()] == ["run_started", "run_finished"]
        with sse(s.url) as events:  # no run, no after, no tail, no follow: nothing
            assert events.rest() == []
        with sse(s.url, tail=2, follow=1) as events:  # the last 2, then live
            assert events.take(2) == everything[-2:]
            wait_until(lambda: s.hub.subscribers == 1, "the stream to subscribe")
            w.started(OTHER)
            (_, live), = events.take(1)
            assert live["run_id"] == OTHER


@pytest.mark.parametrize("buffer", [2000, 3], ids=["resume-from-buffer", "resume-from-log"])
def test_disconnect_and_resume_with_last_event_id(file_log: tuple[Log, Writer], buffer: int) -> None:
    log, w = file_log
    w.started(RUN)
    w.step(RUN)
    stop_writing = threading.Event()

    def write() -> None:
        for i in range(150):
            if stop_writing.is_set():
                return
            w.step(RUN)
            if i % 3 == 0 and OTHER in w.steps:
                w.step(OTHER)
            elif i % 3 == 0:
                w.started(OTHER)
            time.sleep(0.002)  # (a pace, not a wait for anything: the test holds whatever it is)
        w.finished(RUN)

    writer = threading.Thread(target=write)
    with serve(log, buffer=buffer) as s:
        try:
            with sse(s.url, run=RUN, follow=1) as events:
                first = events.take(2)  # the history...
                writer.start()
                first += events.take(40)  # ...and live events, then the client goes away mid-run
            wait_until(lambda: s.hub.subscribers == 0, "the closed stream to be dropped")
            last_id = first[-1][0]
            with sse(s.url, headers={"Last-Event-ID": str(last_id)}, run=RUN, follow=1, after=0) as events:
                second = events.until(is_finished)
        finally:
            stop_writing.set()
            if writer.ident is not None:
                writer.join()
    expected = log_events(log, RUN)
    union = first + second
    assert union == expected
    assert len({e["id"] for _, e in union}) == len(union)


def test_bad_and_torn_lines_are_skipped(file_log: tuple[Log, Writer]) -> None:
    log, w = file_log
    path = Path(log.name)
    w.started(RUN)
    with path.open("ab") as f:
        f.write(b"this is not json\n")
        f.write(b'{"v": 1, "type": "run_started", "run_id": "' + RUN.encode() + b'"}\n')  # not a valid event
    w.step(RUN)
    with serve(log) as s, sse(s.url, run=RUN, follow=1) as events:
        history = events.take(2)
        wait_until(lambda: s.hub.subscribers == 1, "the stream to subscribe")
        with path.open("ab") as f:
            f.write(b"\xff\xfe not utf-8 " + RUN.encode() + b"\n")
            f.write(b'{"v": 1, "type": "step_finished", "run_id": "' + RUN.encode())  # a writer died mid-line
        w.appender.close()
        w.appender = log.appender()  # the next writer cuts the torn line and appends in its place
        w.step(RUN)
        w.finished(RUN)
        live = events.until(is_finished)
    assert [e["type"] for _, e in history + live] == ["run_started", "step_finished", "step_finished",
                                                       "run_finished"]
    assert history + live == log_events(log, RUN)
    assert b"a writer died" not in path.read_bytes() and b"not json" in path.read_bytes()


def test_a_slow_subscriber_is_ended_the_others_keep_going(file_log: tuple[Log, Writer]) -> None:
    log, w = file_log
    w.started(RUN)

    async def scenario() -> None:
        hub = EventHub(log, queue=20)
        hub.start()
        try:
            fast = hub.subscribe(follow=True)
            slow = hub.subscribe(follow=True)
            fast_next = asyncio.ensure_future(anext(fast))
            slow_first = asyncio.ensure_future(anext(slow))
            while hub.subscribers < 2:  # both registered (once the hub is ready)
                await asyncio.sleep(0.01)
            got_fast = []
            for _ in range(100):  # one event at a time, each read by the fast one; the slow one reads none
                await asyncio.to_thread(w.step, RUN)
                got_fast.append(await asyncio.wait_for(fast_next, DEADLINE_S))
                fast_next = asyncio.ensure_future(anext(fast))
            assert hub.subscribers == 1  # the slow one was dropped, the fast one is still there
            got_slow = [await slow_first]
            async for item in slow:  # what it had queued, then the end
                got_slow.append(item)
            assert len(got_slow) == 21  # its first, then a full queue of 20
            # its client resumes from its last position: nothing lost, nothing twice
            async for item in hub.subscribe(after=got_slow[-1].position, follow=False):
                got_slow.append(item)
            assert [i.position for i in got_slow] == [i.position for i in got_fast]
            event = await asyncio.to_thread(w.step, RUN)  # the fast one goes on
            assert (await asyncio.wait_for(fast_next, DEADLINE_S)).event["id"] == event["id"]
            await fast.aclose()
            assert hub.subscribers == 0
        finally:
            await hub.aclose()

    asyncio.run(scenario())


def test_hub_stop_ends_open_streams(file_log: tuple[Log, Writer]) -> None:
    log, w = file_log
    w.started(RUN)
    with serve(log) as s:
        with sse(s.url, run=RUN, follow=1) as a, httpx.stream(
            "GET", s.url, params={"follow": "1"}, headers={"Accept": "application/x-ndjson"}, timeout=DEADLINE_S
        ) as b:
            a.take(1)
            wait_until(lambda: s.hub.subscribers == 2, "both streams to subscribe")
            s.hub.stop()
            assert a.rest() == []  # ended, not timed out (the read timeout is DEADLINE_S)
            assert b.read() == b""
        assert httpx.get(s.url, params={"run": RUN}, timeout=DEADLINE_S).status_code == 503


def test_shutdown_ends_open_streams(file_log: tuple[Log, Writer]) -> None:
    log, w = file_log
    w.started(RUN)
    with serve(log) as s, sse(s.url, run=RUN, follow=1) as events:
        events.take(1)
        wait_until(lambda: s.hub.subscribers == 1, "the stream to subscribe")
        started = time.monotonic()
        s.server.should_exit = True
        assert events.rest() == []
        s.thread.join(DEADLINE_S)
        assert not s.thread.is_alive()
        assert time.monotonic() - started < 10  # at once, not after a graceful-shutdown timeout


def test_keep_alive_comment(file_log: tuple[Log, Writer], monkeypatch: pytest.MonkeyPatch) -> None:
    log, w = file_log
    monkeypatch.setattr(stream, "KEEPALIVE_S", 0.05)
    w.started(RUN)
    with serve(log) as s, sse(s.url, run=RUN, follow=1) as events:
        events.take(1)
        wait_until(lambda: s.hub.subscribers == 1, "the stream to subscribe")
        w.finished(RUN)
        events.take(1)
        for line in events.lines:  # an idle stream: comments only
            if line.startswith(":"):
                assert line == ": keep-alive"
                break
            assert line == ""


@pytest.mark.parametrize(
    ("params", "headers", "names"),
    [
        ({"after": "abc"}, {}, "after"),
        ({"after": "-1"}, {}, "after"),
        ({"run": "../etc"}, {}, "run"),
        ({"tail": "100001"}, {}, "tail"),
        ({"tail": "x"}, {}, "tail"),
        ({"follow": "2"}, {}, "follow"),
        ({"types": "run_started,nope"}, {}, "types"),
        ({"after": "5"}, {"Last-Event-ID": "5x"}, "Last-Event-ID"),
    ],
)
def test_bad_parameters_get_a_400_line(file_log: tuple[Log, Writer], params: dict[str, str],
                                       headers: dict[str, str], names: str) -> None:
    log, w = file_log
    w.started(RUN)
    with serve(log) as s:
        response = httpx.get(s.url, params=params, headers=headers, timeout=DEADLINE_S)
    assert response.status_code == 400
    text = response.text
    assert text.startswith(f"{names}: ") and text.count("\n") == 1, text


def test_append_to_receive_latency(file_log: tuple[Log, Writer]) -> None:
    log, w = file_log
    w.started(RUN)
    latencies: list[float] = []
    with serve(log) as s, sse(s.url, follow=1) as events:
        wait_until(lambda: s.hub.subscribers == 1, "the stream to subscribe")
        for _ in range(100):
            sent = time.perf_counter()
            event = w.step(RUN)
            (_, got), = events.take(1)
            latencies.append(time.perf_counter() - sent)
            assert got["id"] == event["id"]
    p95 = statistics.quantiles(latencies, n=20)[-1] * 1000
    print(f"\nappend -> received over SSE (file log, 100 events): p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p95 {p95:.1f} ms")
    assert p95 < 250  # (well under 100 ms on a quiet machine; generous for a loaded single core)


def test_resume_on_a_nats_stream(nats_server: NatsServer) -> None:  # noqa: F811
    log = open_log_backend(f"{nats_server.url}/{stream_name('E')}")
    appender = log.appender()
    w = Writer(appender)
    try:
        # Interleaved runs: a narrowed read of RUN sees other positions than the whole stream's
        # line starts, so the ids must be the same either way (the history is narrowed, live is not).
        w.started(RUN)
        w.started(OTHER)
        w.step(RUN)
        w.step(OTHER)
        w.step(RUN)
        with serve(log) as s:
            with sse(s.url, run=RUN, follow=1) as events:
                first = events.take(3)
                wait_until(lambda: s.hub.subscribers == 1, "the stream to subscribe")
                for _ in range(3):
                    w.step(OTHER)
                    w.step(RUN)
                first += events.take(2)  # live, then gone mid-run
            wait_until(lambda: s.hub.subscribers == 0, "the closed stream to be dropped")
            w.step(RUN)
            w.step(OTHER)
            w.finished(RUN)
            with sse(s.url, headers={"Last-Event-ID": str(first[-1][0])}, run=RUN, follow=1) as events:
                second = events.until(is_finished)
            with sse(s.url, run=RUN, after=first[1][0]) as events:  # a resume without follow: from the log
                again = events.rest()
        expected = log_events(log, RUN)
        assert first + second == expected
        assert again == expected[2:]
        assert len(expected) == 8
    finally:
        appender.close()


# The server of ``test_the_loop_is_never_blocked``, in a process of its own (so the test's client
# threads do not compete with its loop for the GIL): asyncio's debug mode logs, on stderr, any
# callback that holds the loop longer than 50 ms. It prints its port, then serves.
SLOW_CALLBACK_S = 0.1  # twice the 50 ms: here the client shares the (maybe two, maybe busy) cores
DEBUG_SERVER = """
import asyncio, contextlib, logging, socket, sys
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from warmup.log import as_log
from warmup.serve.hub import EventHub
from warmup.serve.stream import StreamingServer, events_endpoint

logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(name)s: %(message)s")
hub = EventHub(as_log(sys.argv[1]))

@contextlib.asynccontextmanager
async def lifespan(app):
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = float(sys.argv[2])
    hub.start()
    app.state.hub = hub
    try:
        yield
    finally:
        await hub.aclose()

app = Starlette(routes=[Route("/api/events", events_endpoint)], lifespan=lifespan)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
StreamingServer(uvicorn.Config(app, lifespan="on", log_level="warning"), hub).run(sockets=[sock])
"""


def test_the_loop_is_never_blocked(tmp_path: Path) -> None:
    """A big history and a live burst streamed to two clients by a server whose loop runs in
    asyncio's debug mode: no callback may take over ``SLOW_CALLBACK_S`` (history reads and decoding
    are in threads; read on the loop, a history chunk holds it over 300 ms)."""
    log = as_log(tmp_path / "events.jsonl")
    w = Writer(log.appender(fsync="batch"))
    w.started(RUN)
    w.started(OTHER)
    for i in range(20_000):
        w.step(RUN if i % 2 else OTHER, pad=200)
    w.appender.close()
    w.appender = log.appender(fsync="batch")
    errors = tmp_path / "server.err"
    with errors.open("wb") as stderr:
        server = subprocess.Popen([sys.executable, "-c", DEBUG_SERVER, str(log.name), str(SLOW_CALLBACK_S)],
                                  cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        assert port.isdigit(), errors.read_text()
        url = f"http://127.0.0.1:{port}/api/events"

        def answers() -> bool:
            try:
                return httpx.get(url, timeout=DEADLINE_S).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, "the server to answer")
        with sse(url, run=RUN, follow=1) as a, sse(url, follow=1, tail=5000) as b:
            assert len(a.take(10_001)) == 10_001  # the run's whole history (both are subscribed once
            assert len(b.take(5000)) == 5000      # they have their history: they subscribe before it)
            for _ in range(2000):
                w.step(RUN)
            w.finished(RUN)
            w.appender.close()
            assert len(a.until(is_finished)) == 2001
            assert len(b.until(is_finished)) == 2001
    finally:
        server.kill()  # (its shutdown is uvicorn's: not what this test measures)
        server.wait()
    text = errors.read_text()
    assert "took" not in text, text
    assert "Traceback" not in text, text


def test_a_log_that_does_not_exist_yet(tmp_path: Path) -> None:
    """A server started before any run: no history (not an error), then the log's first events live."""
    log = as_log(tmp_path / "later" / "events.jsonl")
    (tmp_path / "later").mkdir()
    with serve(log) as s:
        with sse(s.url, run=RUN) as events:
            assert events.rest() == []
        with sse(s.url, run=RUN, follow=1) as events:
            wait_until(lambda: s.hub.subscribers == 1, "the stream to subscribe")
            w = Writer(log.appender())
            try:
                w.started(RUN)
                w.finished(RUN)
                got = events.until(is_finished)
            finally:
                w.appender.close()
    assert got == log_events(log, RUN)


def test_a_replaced_log_ends_open_streams(file_log: tuple[Log, Writer]) -> None:
    """Positions start again in another file: open streams end rather than skip its events."""
    log, w = file_log
    w.started(RUN)
    other = as_log(Path(log.name).with_name("other.jsonl"))
    with serve(log) as s, sse(s.url, run=RUN, follow=1) as events:
        events.take(1)
        wait_until(lambda: s.hub.subscribers == 1, "the stream to subscribe")
        new = other.appender()
        Writer(new).started(OTHER)
        new.close()
        os.replace(other.name, log.name)
        assert events.rest() == []
        wait_until(lambda: s.hub.subscribers == 0, "the stream to be dropped")
        with sse(s.url, follow=1, tail=1) as again:  # the new file's events, streamed again
            (_, event), = again.take(1)
            assert event["run_id"] == OTHER


def test_a_slow_http_client_is_ended_and_resumes(file_log: tuple[Log, Writer]) -> None:
    """A client that stops reading: the server's sends stall, its queue fills, its stream is ended
    while another client gets everything; resuming from its last id gets the rest."""
    log, w = file_log
    w.started(RUN)
    w.appender.close()
    w.appender = log.appender(fsync="batch")
    count = 5000  # events of 4 KB: 20 MB, far more than the sockets' buffers hold
    with serve(log, queue=20) as s, sse(s.url, follow=1, run=RUN) as slow, sse(s.url, follow=1, run=RUN) as fast:
        slow_got = slow.take(1)
        fast_got = fast.take(1)
        wait_until(lambda: s.hub.subscribers == 2, "both streams to subscribe")

        def read_fast() -> None:
            while (item := fast.next()) is not None:
                fast_got.append(item)
                if is_finished(item[1]):
                    return

        reader = threading.Thread(target=read_fast)
        reader.start()
        try:
            for sent in range(10, count + 1, 10):  # ten at a time, once the fast one has the last ten
                for _ in range(10):
                    w.step(RUN, pad=4000)
                w.appender.close()
                w.appender = log.appender(fsync="batch")
                wait_until(lambda n=sent: len(fast_got) > n or not reader.is_alive(), "the fast client to keep up")
            w.finished(RUN)
        finally:
            reader.join(DEADLINE_S)
        assert s.hub.subscribers == 1  # the slow one was ended, not waited for
        slow_got += slow.rest()  # what was on its way, then the end
        assert len(slow_got) < count
        print(f"\nthe slow client was ended after {len(slow_got)} of {count + 2} events")
        with sse(s.url, headers={"Last-Event-ID": str(slow_got[-1][0])}, run=RUN, follow=1) as again:
            slow_got += again.until(is_finished)
    assert slow_got == fast_got == log_events(log, RUN)


class _FailingFollower(LogFollower):
    """A follower that reads two lines, then fails as a lost connection would."""

    def __init__(self, inner: LogFollower) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator[Any]:
        lines = 0
        for got in self.inner:
            yield got
            if isinstance(got, Line):
                lines += 1
                if lines == 2:
                    raise OSError("connection lost")

    def stop(self) -> None:
        self.inner.stop()

    def close(self) -> None:
        self.inner.close()


class _FlakyLog(FileLog):
    """A file log whose first follower fails after two lines."""

    failures = 0

    def follower_from(self, reader: Any, position: int) -> LogFollower:
        follower = super().follower_from(reader, position)
        if self.failures == 0:
            self.failures += 1
            return _FailingFollower(follower)
        return follower


def test_a_failing_follower_is_opened_again_without_loss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "RETRY_S", 0.05)
    log = _FlakyLog(tmp_path / "events.jsonl")
    w = Writer(log.appender())
    try:
        w.started(RUN)
        with serve(log) as s, sse(s.url, follow=1) as events:
            wait_until(lambda: s.hub.subscribers == 1, "the stream to subscribe")
            for _ in range(5):
                w.step(RUN)
            w.finished(RUN)
            got = events.until(is_finished)
        assert log.failures == 1
        assert got == log_events(log)[1:]
    finally:
        w.appender.close()
