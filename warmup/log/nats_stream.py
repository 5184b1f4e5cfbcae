"""The JetStream requests the NATS log needs, as coroutines on a ``NatsConnection``'s loop.

Raw JetStream API requests (``$JS.API.STREAM.INFO/CREATE/DELETE/MSG.DELETE``, ``$JS.API.DIRECT.GET``):
they are small, documented JSON, and the batched direct get reads many messages per round trip
without creating a consumer (stateless: any position can be read at any time, which is what the
log's opaque positions need).

Subjects: ``<prefix>.<run_id>.<account_id|_>.<type>``, prefix ``warmup`` for the stream ``WARMUP`` and
``warmup.<STREAM>`` for any other, so several streams share one server without overlapping. Each
token is percent-encoded: every byte outside ``[A-Za-z0-9_-]`` becomes ``%XX``, so a token never
holds ``.``, ``*``, ``>``, whitespace or a bare ``%``; a missing or non-string field is ``_``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client

from warmup.errors import WarmupError

API = "$JS.API"
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
DUPLICATE_WINDOW_NS = 120 * 1_000_000_000
REQUEST_TIMEOUT_S = 10.0


def encode_token(value: object) -> str:
    """One subject token for ``value``: ``_`` unless a non-empty string, else percent-encoded."""
    if not isinstance(value, str) or not value:
        return "_"
    raw = value.encode()
    if all(b in _SAFE for b in raw):
        return value
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in raw)


def subject_prefix(stream: str) -> str:
    """``warmup`` for the stream ``WARMUP``, ``warmup.<stream>`` for any other."""
    return "warmup" if stream == "WARMUP" else f"warmup.{stream}"


def subject_for(prefix: str, run_id: object, account_id: object, type_: object) -> str:
    """The subject an event is published on."""
    return f"{prefix}.{encode_token(run_id)}.{encode_token(account_id)}.{encode_token(type_)}"


def stream_subjects(prefix: str) -> str:
    """The wildcard that is the stream's whole subject space."""
    return f"{prefix}.*.*.*"


def run_subjects(prefix: str, run_id: str) -> str:
    """The filter for one run's events."""
    return f"{prefix}.{encode_token(run_id)}.*.*"


def type_subjects(prefix: str, types: Iterable[str], run_id: str | None = None) -> list[str]:
    """The filters for events of ``types`` (of one run if ``run_id``)."""
    run = encode_token(run_id) if run_id is not None else "*"
    return [f"{prefix}.{run}.*.{encode_token(t)}" for t in sorted(set(types))]


MAX_FILTERS = 8  # a narrowed read makes one request per filter; more types read the run (or all)


def narrow_filters(prefix: str, run_id: str | None, types: Collection[str] | None) -> list[str] | None:
    """The subject filters of a narrowed view (one per type, of the run if any), or None for the
    whole stream. Over ``MAX_FILTERS`` types, the view reads the run (consumers check each event)."""
    if types is not None and len(set(types)) <= MAX_FILTERS:
        return type_subjects(prefix, types, run_id)
    if run_id is not None:
        return [run_subjects(prefix, run_id)]
    return None


def merge_fetched(parts: list[Fetched]) -> Fetched:
    """Several filters' batches from one sequence as one batch in stream order, cut at the lowest
    last sequence of a batch that has more after it (so no message of any filter is skipped)."""
    cut = min((p.seqs[-1] for p in parts if p.pending > 0 and p.seqs), default=None)
    pairs = sorted((seq, data) for p in parts for seq, data in zip(p.seqs, p.datas, strict=True))
    kept = [pair for pair in pairs if cut is None or pair[0] <= cut]
    pending = sum(p.pending for p in parts) + len(pairs) - len(kept)
    return Fetched([seq for seq, _ in kept], [data for _, data in kept], pending)


@dataclass
class Fetched:
    """A direct-get batch: (sequence, payload) pairs in order; ``pending`` messages after the last."""

    seqs: list[int]
    datas: list[bytes]
    pending: int


class StreamApi:
    """JetStream requests about one stream (``name``) over ``nc``. Coroutines: run them on its loop."""

    def __init__(self, nc: Client, name: str, where: str, raw_handlers: dict[int, Any]) -> None:
        self.nc = nc
        self.raw_handlers = raw_handlers  # NatsConnection.raw_handlers: the fast path by sid
        self.name = name
        self.where = where  # servers, for messages

    async def _request(
        self, subject: str, body: dict[str, Any] | None = None, timeout: float = REQUEST_TIMEOUT_S
    ) -> dict[str, Any]:
        payload = json.dumps(body).encode() if body is not None else b""
        try:
            msg = await self.nc.request(subject, payload, timeout=timeout)
        except nats.errors.NoRespondersError:
            raise WarmupError(
                f"NATS at {self.where} does not answer JetStream requests: is JetStream enabled (nats-server -js)?"
            ) from None
        except (TimeoutError, nats.errors.TimeoutError):
            raise WarmupError(f"NATS at {self.where} did not answer in {timeout:g} s (about the stream {self.name})",
                              ) from None
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
            raise WarmupError(f"NATS at {self.where}: the connection is down (about the stream {self.name})") from None
        result: dict[str, Any] = json.loads(msg.data)
        return result

    async def info(self, deleted_details: bool = False) -> dict[str, Any] | None:
        """The stream's info (``config``, ``created``, ``state``), or None if it does not exist."""
        body = {"deleted_details": True} if deleted_details else None
        resp = await self._request(f"{API}.STREAM.INFO.{self.name}", body)
        error = resp.get("error")
        if error:
            if error.get("code") == 404:
                return None
            raise WarmupError(f"NATS at {self.where}: stream {self.name}: {error.get('description', error)}")
        return resp

    async def create(self, subjects: str, replicas: int) -> tuple[dict[str, Any], bool]:
        """Create the stream if missing: (its info, True if this call created it)."""
        existing = await self.info()
        if existing is not None:
            return existing, False
        config = {
            "name": self.name,
            "subjects": [subjects],
            "retention": "limits",
            "storage": "file",
            "discard": "old",
            "num_replicas": replicas,
            "duplicate_window": DUPLICATE_WINDOW_NS,
            "allow_direct": True,
            "max_msgs": -1,
            "max_bytes": -1,
            "max_age": 0,
            "max_msg_size": -1,
        }
        resp = await self._request(f"{API}.STREAM.CREATE.{self.name}", config, timeout=30)
        error = resp.get("error")
        if error:
            again = await self.info()
            if again is not None:  # another process created it meanwhile
                return again, False
            why = error.get("description", error)
            raise WarmupError(f"cannot create the stream {self.name} on {self.where}: {why}")
        return resp, True

    async def delete(self) -> bool:
        resp = await self._request(f"{API}.STREAM.DELETE.{self.name}")
        return bool(resp.get("success"))

    async def delete_msg(self, seq: int) -> bool:
        resp = await self._request(f"{API}.STREAM.MSG.DELETE.{self.name}", {"seq": seq, "no_erase": True})
        return bool(resp.get("success"))

    async def fetch(self, seq: int, max_msgs: int, max_bytes: int | None, subject: str | None) -> Fetched:
        """Messages with sequence >= ``seq`` (matching ``subject`` if given), at most ``max_msgs``,
        about ``max_bytes`` (at least one if there is one): one batched direct get."""
        body: dict[str, Any] = {"seq": max(1, seq), "batch": max(1, max_msgs)}
        if max_bytes:
            body["max_bytes"] = max_bytes
        if subject:
            body["next_by_subj"] = subject
        out = Fetched([], [], 0)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        problem: list[str] = []
        seqs, datas = out.seqs, out.datas

        def on_raw(headers: bytes | None, data: bytes) -> None:
            # headers: b"NATS/1.0\r\nNats-Stream: S\r\n...Nats-Sequence: 5\r\n..." for a message,
            # b"NATS/1.0 204 EOB\r\nNats-Num-Pending: 0\r\n..." at the end of the batch.
            if headers is None:
                return
            if headers[8:9] != b" ":
                at = headers.find(b"Nats-Sequence:") + 14
                seqs.append(int(headers[at : headers.find(b"\r", at)]))
                datas.append(data)
                return
            status = headers[9:12].decode(errors="replace")
            if status == "204":
                at = headers.find(b"Nats-Num-Pending:")
                if at >= 0:
                    out.pending = int(headers[at + 17 : headers.find(b"\r", at)])
            elif status != "404":  # 404: nothing there
                problem.append(headers[9:].split(b"\r", 1)[0].decode(errors="replace").strip())
            if not done.done():
                done.set_result(None)

        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        self.raw_handlers[sub._id] = on_raw
        try:
            await self.nc.publish(f"{API}.DIRECT.GET.{self.name}", json.dumps(body).encode(), reply=inbox)
            await asyncio.wait_for(done, REQUEST_TIMEOUT_S)
        except TimeoutError:
            raise WarmupError(f"NATS at {self.where} did not answer a read of the stream {self.name} in time") from None
        finally:
            self.raw_handlers.pop(sub._id, None)
            await sub.unsubscribe()
        if problem:
            if problem[0].startswith("503"):
                raise WarmupError(f"NATS at {self.where}: the stream {self.name} does not allow direct reads")
            raise WarmupError(f"NATS at {self.where}: reading the stream {self.name}: {problem[0]}")
        return out
