"""The JetStream backend's own promises (the contract suite runs on it too): real nats-server
processes started by ``nats_servers``; no timing assertion tighter than "well before seconds"."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

pytest.importorskip("nats")

from nats_servers import NatsCluster, NatsServer, nats_cluster, nats_server, stream_name  # noqa: F401

from warmup.errors import UsageError, WarmupError
from warmup.events.follower import Notice
from warmup.events.reader import Line
from warmup.events.writer import LogWriteError
from warmup.log import LogMismatch, LogMissing, open_log_backend
from warmup.log.nats import NatsLog, subject_for
from warmup.log.nats_conn import close_all
from warmup.log.nats_stream import encode_token, run_subjects, type_subjects
from warmup.log.nats_url import load_auth, parse_nats_url


def ev(i: int, run: str = "r1", account: str | None = "a1", type_: str = "step_finished") -> bytes:
    fields: dict[str, object] = {"id": f"ev-{run}-{i}", "type": type_, "run_id": run, "i": i}
    if account is not None:
        fields["account_id"] = account
    return orjson.dumps(fields)


def read_everything(log: NatsLog, position: int = 0, max_bytes: int = 1 << 20) -> tuple[list[bytes], list[int]]:
    lines: list[bytes] = []
    seqs: list[int] = []
    with log.reader() as reader:
        while True:
            batch = reader.read(position, max_bytes)
            if not batch.lines:
                return lines, seqs
            lines.extend(batch.lines)
            seqs.extend(reader.positions(batch)[1:])
            position = batch.end


@pytest.fixture
def log(nats_server: NatsServer) -> Iterator[NatsLog]:  # noqa: F811
    log = NatsLog(f"{nats_server.url}/{stream_name('N')}")
    yield log
    if log._conn is not None and log.info() is not None:
        log.call(log.api.delete())


# -- URLs and subjects ------------------------------------------------------------------------

def test_urls_parse_and_refuse_what_they_must() -> None:
    target = parse_nats_url("nats://127.0.0.1:4222,10.0.0.2:4223/EVENTS")
    assert target.servers == ("nats://127.0.0.1:4222", "nats://10.0.0.2:4223") and target.stream == "EVENTS"
    assert parse_nats_url("tls://h").servers == ("tls://h:4222",)
    assert parse_nats_url("nats://h:4222").name == "nats://h:4222/WARMUP"
    for bad in ("nats:///S", "nats://h:99999/S", "nats://h:x/S", "nats://h/S.T", "nats://h/a b", "nats://,h/S"):
        with pytest.raises(UsageError) as caught:
            parse_nats_url(bad)
        assert "\n" not in str(caught.value)
    with pytest.raises(UsageError) as caught:
        open_log_backend("nats://alice:secret-pass-123@127.0.0.1:4222/S")
    assert "secret-pass-123" not in str(caught.value) and "alice" not in str(caught.value)
    assert "credentials in a NATS URL are refused" in str(caught.value)


def test_subject_tokens_are_encoded() -> None:
    assert encode_token("abc-DEF_9") == "abc-DEF_9"
    assert encode_token("a.b%c d*>") == "a%2Eb%25c%20d%2A%3E"
    assert encode_token("é") == "%C3%A9"
    assert encode_token(None) == encode_token(3) == encode_token("") == "_"
    assert subject_for("warmup", "r1", None, "run_started") == "warmup.r1._.run_started"
    assert run_subjects("warmup.S", "r.1") == "warmup.S.r%2E1.*.*"
    assert type_subjects("warmup", ["b", "a"]) == ["warmup.*.*.a", "warmup.*.*.b"]


def test_an_account_with_dots_and_percents_round_trips(log: NatsLog) -> None:
    line = ev(0, account="acct.one%two three")
    appender = log.appender()
    appender.append_line(line + b"\n")
    appender.append_line(b"not json at all\n")
    raw = log.call(log.connection.js.get_msg(log.stream, appender.last_seq - 1))
    assert raw.subject == f"{log.prefix}.r1.acct%2Eone%25two%20three.step_finished"
    raw = log.call(log.connection.js.get_msg(log.stream, appender.last_seq))
    assert raw.subject == f"{log.prefix}._._._"
    assert read_everything(log)[0] == [line, b"not json at all"]


def test_a_narrowed_view_reads_one_run_and_keeps_stream_positions(log: NatsLog) -> None:
    appender = log.appender()
    for i in range(30):
        appender.append_line(ev(i, run="X" if i % 3 == 0 else "Y", type_="a" if i % 2 else "b"))
    x = log.narrowed(run_id="X")
    lines, seqs = read_everything(x)
    assert lines == [ev(i, run="X", type_="a" if i % 2 else "b") for i in range(0, 30, 3)]
    assert seqs == list(range(1, 31, 3))  # the whole stream's sequences
    assert read_everything(x, seqs[3])[0] == lines[4:]
    xa = log.narrowed(run_id="X", types=["a"])
    assert read_everything(xa)[0] == [ev(i, run="X", type_="a") for i in range(3, 30, 6)]
    with x.reader() as reader:
        assert [line.data for line in reader.lines_backward(reader.end())] == lines[::-1]
    follower = x.follower(seqs[-2])
    items = iter(follower)
    first = next(items)
    assert isinstance(first, Line) and first.data == lines[-1] and first.end == seqs[-1]
    assert next(items) is None
    appender.append_line(ev(99, run="Y"))
    appender.append_line(ev(100, run="X"))
    item = next(items)
    while item is None:
        item = next(items)
    assert isinstance(item, Line) and item.data == ev(100, run="X") and item.end == 32
    follower.close()
    assert log.describe_position(7) == "sequence 7"


def test_a_view_of_several_types_merges_their_subjects_in_stream_order(log: NatsLog) -> None:
    appender = log.appender()
    kinds = ["a", "b", "c", "d"]
    sent = [(i, "X" if i % 5 else "Y", kinds[(i * 7) % 4]) for i in range(200)]
    for i, run, kind in sent:
        appender.append_line(ev(i, run=run, type_=kind))
    for run, types in ((None, ["a", "b"]), ("X", ["a", "c"]), (None, ["d"]), (None, [])):
        view = log.narrowed(run_id=run, types=types)
        want = [ev(i, run=r, type_=k) for i, r, k in sent if k in types and run in (None, r)]
        want_seqs = [i + 1 for i, r, k in sent if k in types and run in (None, r)]
        for max_bytes in (1 << 20, 300):  # 300: batches cut by size, merged without a gap
            assert read_everything(view, 0, max_bytes) == (want, want_seqs), (run, types, max_bytes)
        if want:
            with view.reader() as reader:
                assert [line.data for line in reader.lines_backward(reader.end())] == want[::-1]
                assert read_everything(view, want_seqs[len(want) // 2])[0] == want[len(want) // 2 + 1 :]


# -- appending --------------------------------------------------------------------------------

def test_a_publish_retried_after_a_lost_ack_is_stored_once(log: NatsLog) -> None:
    appender = log.appender()
    line = ev(1)
    first = appender.publish_raw(line, "ev-r1-1")
    again = appender.publish_raw(line, "ev-r1-1")  # the writer never saw the first ack: same id
    assert not first.duplicate and again.duplicate and again.seq == first.seq
    appender.append_line(line + b"\n")  # the same event through the usual path: its id is the msg id
    appender.append_line(ev(2) + b"\n")
    assert read_everything(log)[0] == [line, ev(2)]
    assert appender.last_seq == 2


def test_the_stream_is_created_on_first_append_and_said_so(log: NatsLog, capsys: pytest.CaptureFixture[str]) -> None:
    assert not log.exists()
    with pytest.raises(LogMissing, match="the stream does not exist yet") as caught:
        log.reader()
    assert log.name in str(caught.value) and caught.value.exit_code == 2
    log.appender()
    log.appender()
    err = capsys.readouterr().err
    assert err.count(f"warmup: created the stream {log.stream} on ") == 1 and "(replicas 1)" in err
    info = log.info()
    assert info is not None
    config = info["config"]
    assert config["allow_direct"] and config["storage"] == "file" and config["num_replicas"] == 1
    assert config["duplicate_window"] == 120 * 10**9 and config["subjects"] == [f"{log.prefix}.*.*.*"]


def test_a_stream_of_other_subjects_is_refused(log: NatsLog) -> None:
    async def create() -> None:
        await log.connection.js.add_stream(name=log.stream, subjects=["orders.>"])

    log.call(create())
    with pytest.raises(UsageError, match=r"does not take the subjects .*it takes orders\.>"):
        log.appender()
    from warmup.log.nats import _covers

    assert _covers("warmup.>", "warmup.*.*.*") and _covers("warmup.*.*.*", "warmup.*.*.*")
    assert _covers(">", "warmup.S.*.*.*") and not _covers("warmup.*.*.*", "warmup.S.*.*.*")
    assert not _covers("warmup.a.*.*", "warmup.*.*.*") and not _covers("warmup.*", "warmup.*.*.*")


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    from nats_servers import free_port

    url = f"nats://127.0.0.1:{free_port()}/S"
    with pytest.raises(WarmupError) as caught:
        NatsLog(url).exists()
    text = str(caught.value)
    assert caught.value.exit_code == 1 and "\n" not in text
    assert text.startswith(f"cannot reach NATS at {url.rsplit('/', 1)[0]}: ") and "is nats-server running?" in text


def test_a_publish_while_the_server_is_down_is_retried_and_stored_once(tmp_path: Path) -> None:
    server = NatsServer(tmp_path, "flap")
    try:
        log = NatsLog(f"{server.url}/FLAP")
        appender = log.appender()
        appender.append_line(ev(0))
        server.stop()
        done: list[BaseException | None] = []

        def publish() -> None:
            try:
                appender.append_line(ev(1))
                done.append(None)
            except BaseException as exc:  # noqa: BLE001 (reported below)
                done.append(exc)

        thread = threading.Thread(target=publish)
        thread.start()
        time.sleep(1.0)
        assert not done, "the append returned while the server was down"
        server.start()
        thread.join(timeout=30)
        assert done == [None]
        assert read_everything(log)[0] == [ev(0), ev(1)]
    finally:
        close_all()
        server.stop()


def test_a_publish_that_never_gets_through_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = NatsServer(tmp_path, "gone")
    try:
        monkeypatch.setenv("WARMUP_NATS_PUBLISH_TIMEOUT", "1")
        log = NatsLog(f"{server.url}/GONE")
        appender = log.appender()
        server.stop()
        with pytest.raises(LogWriteError) as caught:
            appender.append_line(ev(0))
        assert str(caught.value).startswith(f"[Errno 5] cannot append to the event log {log.name}: ")
    finally:
        close_all()
        server.stop()


def test_a_late_ack_of_an_earlier_try_is_ignored(log: NatsLog) -> None:
    appender = log.appender()
    appender.append_line(ev(0))
    publisher = appender.publisher
    assert publisher is not None and publisher.sock is not None
    # the reply to the previous try, arriving while the next one waits (as an ack that came late
    # after its try timed out): it names another sequence, and must not be taken for this try's ack
    fake = orjson.dumps({"stream": log.stream, "seq": 999})
    publisher.sock.sendall(b"PUB %s.%d %d\r\n%s\r\n" % (publisher.inbox.encode(), publisher._n, len(fake), fake))
    appender.append_line(ev(1))
    appender.append_line(ev(2))
    assert publisher.late_replies == 1 and appender.last_seq == 3 and appender.retries == 0
    assert read_everything(log)[0] == [ev(0), ev(1), ev(2)]


def test_a_ping_from_the_server_while_waiting_for_an_ack_is_answered(tmp_path: Path) -> None:
    # the server drops a client that leaves 3 PINGs unanswered (1 or 2 in each pause)
    server = NatsServer(tmp_path, "ping", extra=['ping_interval: "200ms"', "ping_max: 2"])
    try:
        log = NatsLog(f"{server.url}/PING")
        appender = log.appender()
        for i in range(6):
            appender.append_line(ev(i))
            time.sleep(0.4)  # 1 or 2 PINGs come meanwhile: the next append reads them before its ack
        publisher = appender.publisher
        assert publisher is not None and publisher.pongs >= 1
        assert publisher.connects == 1 and appender.retries == 0  # never dropped as stale
        assert read_everything(log)[0] == [ev(i) for i in range(6)]
    finally:
        close_all()
        server.stop()


def test_a_big_event_is_published_and_a_too_big_one_fails_at_once(log: NatsLog) -> None:
    appender = log.appender()
    text = "x" * (3 << 20)
    big = orjson.dumps({"id": "ev-big", "type": "page_text", "run_id": "r1", "account_id": "a1", "text": text})
    appender.append_line(big + b"\n")
    appender.append_line(ev(1))
    assert read_everything(log)[0] == [big, ev(1)]
    huge = orjson.dumps({"id": "ev-huge", "type": "page_text", "run_id": "r1", "text": "x" * (9 << 20)})
    t0 = time.monotonic()
    with pytest.raises(LogWriteError) as caught:
        appender.append_line(huge)
    assert time.monotonic() - t0 < 5  # not retried until the deadline: it will never pass
    text = str(caught.value)
    assert "\n" not in text and f"cannot append to the event log {log.name}: maximum payload exceeded" in text
    appender.append_line(ev(2))  # the appender goes on
    assert read_everything(log)[0] == [big, ev(1), ev(2)]


def test_appends_over_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=tmp_path, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=warmup test ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (tmp_path / "ext.cnf").write_text("subjectAltName=DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # (ssl.create_default_context trusts it)
    tls = f'tls {{ cert_file: "{tmp_path / "server.pem"}", key_file: "{tmp_path / "server.key"}" }}'
    server = NatsServer(tmp_path, "tls", extra=[tls])
    try:
        for scheme in ("tls", "nats"):  # tls://, and nats:// to a server whose INFO says tls_required
            log = NatsLog(f"{scheme}://localhost:{server.port}/TLS")
            appender = log.appender()
            appender.append_line(ev(0 if scheme == "tls" else 1))
            assert appender.publisher is not None and "SSL" in type(appender.publisher.sock).__name__
            appender.close()
        assert read_everything(log)[0] == [ev(0), ev(1)]
    finally:
        close_all()
        server.stop()


# -- identity ---------------------------------------------------------------------------------

def test_the_checkpoint_refuses_a_recreated_stream_and_accepts_it_grown(log: NatsLog) -> None:
    appender = log.appender()
    for i in range(10):
        appender.append_line(ev(i))
    with log.reader() as reader:
        end = reader.end()
        fingerprint = reader.fingerprint(end)
    assert fingerprint is not None and fingerprint.startswith(f"{log.stream}@")
    appender.append_line(ev(10))
    with log.reader() as reader:
        reader.verify(end, fingerprint)
    with log.reader() as reader:
        reader.verify(end, fingerprint)
        log.call(log.api.delete_msg(3))  # one message before the checkpoint deleted
        with pytest.raises(LogMismatch, match=r"lost messages before the database's checkpoint \(sequence 10\)"):
            reader.verify(end, fingerprint)
    log.call(log.api.delete())
    appender = log.appender()
    for i in range(20):
        appender.append_line(ev(i))
    with log.reader() as reader, pytest.raises(LogMismatch) as caught:
        reader.verify(end, fingerprint)
    text = str(caught.value)
    assert "was re-created (created " in text and "warmup replay" in text and log.name in text


# -- credentials ------------------------------------------------------------------------------

PASSWORD = "secret-pass-123"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats-auth"), "auth", user="warmup", password=PASSWORD)
    yield server
    close_all()
    server.stop()


def test_credentials_from_a_file_work_and_never_show(
    auth_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "nats.creds"
    creds.write_text(f"warmup:{PASSWORD}\n")
    monkeypatch.setenv("WARMUP_NATS_CREDS", str(creds))
    log = NatsLog(f"{auth_server.url}/AUTH")
    assert PASSWORD not in repr(log.auth) and PASSWORD not in log.name
    appender = log.appender()
    appender.append_line(ev(0))
    lines, _ = read_everything(log)
    assert lines == [ev(0)] and all(PASSWORD.encode() not in line for line in lines)

    creds.write_text("warmup:wrong-pass-456\n")
    with pytest.raises(WarmupError) as caught:
        NatsLog(f"{auth_server.url}/AUTH").exists()
    text = str(caught.value)
    assert "wrong-pass-456" not in text and PASSWORD not in text and "\n" not in text
    assert "refused the credentials" in text and str(creds) in text

    monkeypatch.delenv("WARMUP_NATS_CREDS")
    with pytest.raises(WarmupError) as caught:
        NatsLog(f"{auth_server.url}/AUTH").exists()
    assert "refused the credentials" in str(caught.value) and "WARMUP_NATS_CREDS" in str(caught.value)


def test_the_blocking_publisher_words_refused_credentials_in_one_line(
    auth_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from warmup.log.nats_append import NatsLogAppender

    creds = tmp_path / "nats.creds"
    creds.write_text("warmup:wrong-pass-789\n")
    monkeypatch.setenv("WARMUP_NATS_CREDS", str(creds))
    with pytest.raises(WarmupError) as caught:
        NatsLogAppender(NatsLog(f"{auth_server.url}/AUTH"))  # (no stream needed: it connects first)
    text = str(caught.value)
    assert caught.value.exit_code == 1 and "\n" not in text and "wrong-pass-789" not in text
    where = f"NATS at {auth_server.url} refused the credentials"
    assert text == f"{where} (credentials from {creds}): authorization violation"


def test_credentials_files_of_each_kind(tmp_path: Path) -> None:
    path = tmp_path / "c"
    path.write_text("tok-123\n")
    assert load_auth({"WARMUP_NATS_CREDS": str(path)}).kwargs() == {"token": "tok-123"}
    path.write_text("u:p:q\n")
    assert load_auth({"WARMUP_NATS_CREDS": str(path)}).kwargs() == {"user": "u", "password": "p:q"}
    path.write_text("-----BEGIN NATS USER JWT-----\nxyz\n------END NATS USER JWT------\n")
    assert load_auth({"WARMUP_NATS_CREDS": str(path)}).kwargs() == {"user_credentials": str(path)}
    assert load_auth({}).kwargs() == {}
    with pytest.raises(UsageError, match="does not exist") as caught:
        load_auth({"WARMUP_NATS_CREDS": str(tmp_path / "nope")})
    assert str(tmp_path / "nope") in str(caught.value)
    path.write_text("")
    with pytest.raises(UsageError, match="is empty"):
        load_auth({"WARMUP_NATS_CREDS": str(path)})


# -- a cluster --------------------------------------------------------------------------------

def test_appends_go_on_with_one_cluster_node_down(nats_cluster: NatsCluster) -> None:  # noqa: F811
    log = NatsLog(f"{nats_cluster.url}/R3", replicas=3)
    appender = log.appender()
    info = log.info()
    assert info is not None and info["config"]["num_replicas"] == 3
    for i in range(5):
        appender.append_line(ev(i))
    leader = info["cluster"]["leader"]  # the hardest node to lose: the stream elects another leader
    down = next(node for node in nats_cluster.nodes if node.name == leader)
    down.stop()
    try:
        for i in range(5, 15):
            appender.append_line(ev(i))  # acked by the two left (retried while they elect a leader)
        lines, seqs = read_everything(log)
        assert lines == [ev(i) for i in range(15)] and seqs == list(range(1, 16))
        after = log.info()
        assert after is not None and after["cluster"]["leader"] not in (None, leader)
    finally:
        down.start()
    for i in range(15, 20):
        appender.append_line(ev(i))
    assert read_everything(log)[0] == [ev(i) for i in range(20)]
    close_all()


# -- reading fast -----------------------------------------------------------------------------

def test_twenty_thousand_messages_read_in_full_and_in_order(log: NatsLog) -> None:
    log.appender()
    nc = log.connection.nc
    subject = subject_for(log.prefix, "r1", "a1", "step_finished")

    async def fill() -> None:
        for i in range(20_000):
            await nc.publish(subject, ev(i))
        await nc.flush()

    log.call(fill(), timeout=120)
    deadline = time.monotonic() + 30
    while (log.info() or {"state": {"last_seq": 0}})["state"]["last_seq"] < 20_000:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t0 = time.perf_counter()
    lines, seqs = read_everything(log)
    elapsed = time.perf_counter() - t0
    assert lines == [ev(i) for i in range(20_000)] and seqs == list(range(1, 20_001))
    print(f"read 20,000 messages in {elapsed:.2f} s ({20_000 / elapsed:,.0f}/s)")
    calls: list[int] = []
    fetch = log.fetch

    def counted(seq: int, max_msgs: int, max_bytes: int | None, *, whole: bool = False) -> object:
        calls.append(max_msgs)
        return fetch(seq, max_msgs, max_bytes, whole=whole)

    log.fetch = counted  # type: ignore[method-assign,assignment]
    with log.reader() as reader:  # tail -n 10: a window at the end, not the whole stream
        last = list(zip(range(10), reader.lines_backward(reader.end()), strict=False))
        assert [line.data for _, line in last] == [ev(i) for i in range(19_999, 19_989, -1)]
    assert len(calls) == 1 and sum(calls) <= 100


def test_a_follower_tells_a_removed_stream_and_its_return(log: NatsLog) -> None:
    appender = log.appender()
    appender.append_line(ev(0))
    follower = log.follower(0)
    items = iter(follower)
    assert isinstance(next(items), Line) and next(items) is None
    log.call(log.api.delete())
    item = next(items)
    while item is None:
        item = next(items)
    assert isinstance(item, Notice) and item.kind == "removed", item
    log.appender().append_line(ev(1))
    item = next(items)
    while item is None:
        item = next(items)
    assert isinstance(item, Notice) and item.kind == "created" and "is back" in item.message
    item = next(items)
    assert isinstance(item, Line) and item.data == ev(1) and item.start == 0
    follower.stop()
    follower.close()
