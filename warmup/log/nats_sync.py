"""A minimal blocking NATS client for one job: publish an event to JetStream and read its ack.

``NatsLogAppender`` publishes through it in the calling thread: no asyncio, no thread hop, one
``sendall`` and one buffered read per event (about four times nats-py's rate through its loop).
Everything else (reading, following, leases, creating the stream) stays on nats-py.

Protocol (NATS client protocol, text): ``INFO`` from the server, ``CONNECT``, ``SUB <inbox>.* 1``,
``PING``/``PONG``; then per try ``HPUB <subject> <inbox>.<n> <hdr> <total>`` with ``Nats-Msg-Id``
and ``Nats-Expected-Stream``, and the reply on ``<inbox>.<n>``: ``MSG`` (the PubAck JSON) or
``HMSG`` with status 503 (no responders).

Invariants:
- One try is one ``n`` (never reused on this publisher). The inbox prefix stays the same across
  reconnects, so a late ack of an earlier try (of any connection) arrives on ``<inbox>.<older n>``
  and is ignored: only the reply to the current try counts (``late_replies`` counts the others).
- Any socket error, end of stream or timeout closes the connection; the next try reconnects,
  starting at the server after the one that failed (round robin over the target's servers).
- A ``PING`` from the server is answered with ``PONG`` whenever one is read; ``+OK``, ``PONG`` and
  ``INFO`` are ignored. No reader runs between publishes: a connection idle for longer than the
  server's ping interval times ``ping_max`` is dropped by the server, and the next try reconnects.
- Errors are one line and never hold a credential (nor the credentials file's content).
- Not thread-safe: its user holds a lock around a try (``NatsLogAppender`` does).
"""

from __future__ import annotations

import secrets
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import orjson

from warmup.log.nats_url import NatsAuth, NatsTarget

CONNECT_TIMEOUT_S = 2.0
TRY_TIMEOUT_S = 2.0
NO_RESPONDERS = "no stream answered (is the stream there, does its cluster have a leader?)"
NO_ACK = "no acknowledgement in time"
CONNECTION_DOWN = "the connection to NATS is down"


class Transient(Exception):
    """A try that failed but may pass later (``str`` is the reason, for people)."""


class Fatal(Exception):
    """A publish that will never pass (an oversized event, a stream that refuses it...)."""


class Refused(Exception):
    """The server refused the connection itself (credentials, permissions): ``str`` is its -ERR text."""


def _is_auth_error(text: str) -> bool:
    text = text.lower()
    return "authorization" in text or "authentication" in text or "user authentication" in text


class NatsSyncPublisher:
    """A blocking publisher to ``target``'s servers with ``auth`` (user/password or token; not a
    JWT creds file: that needs nkey signing, which stays with nats-py).

    ``connect()`` connects now (the first server that answers, in order); ``publish_try`` makes one
    try and returns the PubAck dict, or raises ``Transient`` / ``Fatal`` / ``Refused``.
    """

    def __init__(self, target: NatsTarget, auth: NatsAuth, *, try_timeout_s: float = TRY_TIMEOUT_S) -> None:
        options = auth.kwargs()
        if "user_credentials" in options:
            raise ValueError("a JWT creds file needs nkey signing: use nats-py")
        self.target = target
        self.auth = auth
        self.try_timeout_s = try_timeout_s
        self.inbox = f"_INBOX.{secrets.token_hex(11)}"
        self._inbox_b = self.inbox.encode() + b"."
        self.sock: socket.socket | None = None
        self._rfile: Any = None
        self.server: str | None = None
        self.max_payload = 1 << 20
        self._next = 0  # the index of the server to try first at the next connect
        self._n = 0
        self.late_replies = 0
        self.pongs = 0
        self.connects = 0

    # -- the connection ------------------------------------------------------------------------
    def connected(self) -> bool:
        return self.sock is not None

    def connect(self, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Connect to the first server (from the one after the last that failed) that completes
        ``INFO``/``CONNECT``/``PING``/``PONG``. ``Refused`` at once if a server refuses the
        credentials; else ``Transient`` (the last server's reason) when none could be reached."""
        self.close()
        servers = self.target.servers
        last: BaseException | None = None
        for i in range(len(servers)):
            index = (self._next + i) % len(servers)
            try:
                self._connect_to(servers[index], timeout_s)
            except Refused:
                self.close()
                self._next = (index + 1) % len(servers)
                raise
            except (OSError, Transient, ValueError) as exc:
                self.close()
                last = exc
                continue
            self._next = (index + 1) % len(servers)  # a reconnect starts at the next one
            self.connects += 1
            return
        raise Transient(_reason(last)) from None

    def _connect_to(self, server: str, timeout_s: float) -> None:
        split = urlsplit(server)
        host, port = split.hostname or "127.0.0.1", split.port or 4222
        sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        info = self._read_info_raw(sock)
        if split.scheme == "tls" or info.get("tls_required"):
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=host)
            self.sock = sock
        self.max_payload = int(info.get("max_payload") or self.max_payload)
        self._rfile = sock.makefile("rb", buffering=65536)
        connect: dict[str, Any] = {
            "verbose": False,
            "pedantic": False,
            "headers": True,
            "no_responders": True,
            "name": "warmup-append",
            "lang": "python",
            "version": "warmup",
            "protocol": 1,
        }
        options = self.auth.kwargs()
        if "user" in options:
            connect["user"] = options["user"]
            connect["pass"] = options.get("password", "")
        elif "token" in options:
            connect["auth_token"] = options["token"]
        sock.sendall(
            b"CONNECT " + orjson.dumps(connect) + b"\r\nSUB " + self.inbox.encode() + b".* 1\r\nPING\r\n"
        )
        while True:
            line = self._readline()
            if line == b"PONG\r\n":
                break
            if line.startswith(b"-ERR"):
                text = _err_text(line)
                if _is_auth_error(text) or "permissions" in text.lower():
                    raise Refused(text)
                raise Transient(f"the server said {text}")
            if line == b"PING\r\n":
                self._pong()
            # +OK, INFO: nothing to do
        self.server = server
        sock.settimeout(self.try_timeout_s)

    def _read_info_raw(self, sock: socket.socket) -> dict[str, Any]:
        """The server's first line (``INFO {...}``), read from the raw socket: the server sends
        nothing more before our ``CONNECT`` (or, for TLS, before the handshake)."""
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
            if len(data) > 1 << 20:
                raise Transient("not a NATS server")
        if not data.startswith(b"INFO "):
            raise Transient("not a NATS server")
        try:
            info = orjson.loads(data[5:].strip())
        except orjson.JSONDecodeError:
            raise Transient("not a NATS server") from None
        return info if isinstance(info, dict) else {}

    def close(self) -> None:
        """Close the socket (idempotent); the next try reconnects."""
        rfile, sock = self._rfile, self.sock
        self._rfile = self.sock = None
        self.server = None
        for thing in (rfile, sock):
            if thing is not None:
                try:
                    thing.close()
                except OSError:
                    pass

    # -- publishing ----------------------------------------------------------------------------
    def publish_try(
        self, subject: str, payload: bytes, msg_id: str | None, stream: str | None, timeout_s: float
    ) -> dict[str, Any]:
        """One try: publish, read until the reply to this try, return the PubAck dict
        (``stream``, ``seq``, ``duplicate``). ``Transient``: retry (the connection is closed if
        it was the cause); ``Fatal``: never passes; ``Refused``: the server refused the credentials."""
        headers = b"NATS/1.0\r\n"
        if msg_id is not None:
            headers += b"Nats-Msg-Id: " + _header_value(msg_id) + b"\r\n"
        if stream is not None:
            headers += b"Nats-Expected-Stream: " + _header_value(stream) + b"\r\n"
        headers += b"\r\n"
        total = len(headers) + len(payload)
        try:
            if self.sock is None:
                self.connect(min(CONNECT_TIMEOUT_S, timeout_s))
            if total > self.max_payload:
                raise Fatal(
                    f"maximum payload exceeded (an event of {len(payload)} bytes; "
                    f"the server takes at most {self.max_payload})"
                )
            assert self.sock is not None
            self.sock.settimeout(timeout_s)
            self._n += 1
            n = self._n
            reply = self._inbox_b + str(n).encode()
            self.sock.sendall(
                b"HPUB %s %s %d %d\r\n%s%s\r\n" % (subject.encode(), reply, len(headers), total, headers, payload)
            )
            return self._await_reply(n)
        except TimeoutError:
            self.close()
            raise Transient(NO_ACK) from None
        except (OSError, ValueError) as exc:  # (ValueError: a reply line that is not NATS)
            self.close()
            raise Transient(_reason(exc)) from None
        except Transient:
            raise
        except (Fatal, Refused):
            self.close()
            raise

    def _await_reply(self, n: int) -> dict[str, Any]:
        while True:
            line = self._readline()
            if line.startswith(b"MSG ") or line.startswith(b"HMSG "):
                parts = line.split()
                is_h = parts[0] == b"HMSG"
                size = int(parts[-1])
                hsize = int(parts[-2]) if is_h else 0
                body = self._read_exact(size + 2)[:size]
                subject = parts[1]
                if not subject.startswith(self._inbox_b):
                    continue
                try:
                    which = int(subject[len(self._inbox_b):])
                except ValueError:
                    continue
                if which != n:
                    self.late_replies += 1  # a reply to an earlier try (its ack came late): not ours
                    continue
                head, data = body[:hsize], body[hsize:]
                if is_h:
                    status = head.split(b"\r\n", 1)[0].split()
                    if len(status) > 1 and status[1] == b"503":
                        raise Transient(NO_RESPONDERS)
                    if len(status) > 1 and not data:
                        raise Transient(f"the server answered status {status[1].decode(errors='replace')}")
                return _pub_ack(data)
            if line == b"PING\r\n":
                self._pong()
            elif line.startswith(b"-ERR"):
                text = _err_text(line)
                low = text.lower()
                if _is_auth_error(text):
                    raise Refused(text)
                if "permissions violation" in low:
                    raise Fatal(f"the server refused the publish: {text}")
                if "maximum payload" in low:
                    raise Fatal("maximum payload exceeded")
                self.close()
                raise Transient(f"the server said {text}")
            # +OK, PONG, INFO: nothing to do

    def _readline(self) -> bytes:
        line: bytes = self._rfile.readline(1 << 20)
        if not line.endswith(b"\r\n"):
            raise ConnectionError("the connection closed")
        return line

    def _read_exact(self, size: int) -> bytes:
        data: bytes = self._rfile.read(size)
        if len(data) != size:
            raise ConnectionError("the connection closed")
        return data

    def _pong(self) -> None:
        assert self.sock is not None
        self.sock.sendall(b"PONG\r\n")
        self.pongs += 1


def _header_value(value: str) -> bytes:
    if "\r" in value or "\n" in value:
        raise Fatal("an event id or stream name holds a line break")
    return value.encode()


def _err_text(line: bytes) -> str:
    return line[4:].strip().decode(errors="replace").strip("'")


def _reason(exc: BaseException | None) -> str:
    if isinstance(exc, Transient):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return NO_ACK
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or type(exc).__name__}"
    return CONNECTION_DOWN


def _pub_ack(data: bytes) -> dict[str, Any]:
    """The PubAck dict of a reply; ``Transient`` for an error that may pass, ``Fatal`` for one that
    never will (a 4xx: wrong stream, a message too big for the stream, bad headers...)."""
    try:
        ack = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise Transient("the server answered something that is not an acknowledgement") from None
    if not isinstance(ack, dict):
        raise Transient("the server answered something that is not an acknowledgement")
    error = ack.get("error")
    if error is not None:
        code = error.get("code") if isinstance(error, dict) else None
        description = error.get("description", "") if isinstance(error, dict) else str(error)
        text = f"JetStream error {code}: {description}" if code is not None else f"JetStream error: {description}"
        if isinstance(code, int) and 400 <= code < 500 and code != 408:
            raise Fatal(text)
        raise Transient(text)
    if "seq" not in ack or "stream" not in ack:
        raise Transient("the server answered something that is not an acknowledgement")
    return ack
