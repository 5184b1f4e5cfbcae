"""The work queue of ``run --workers``: one item per account, on a JetStream work-queue stream.

Stream ``<STREAM>_WORK`` (created beside the log's stream, same replicas), subjects
``warmupwork.<STREAM>.<run_id>.<account_id>``, retention *work queue*: an item is removed once a
worker acks it. One durable pull consumer, ``workers``, shared by every ``warmup worker``:

- **At most one worker holds an item at a time.** JetStream delivers it to one fetch; it comes back
  only if that worker neither acks it nor says it is still working on it (``in_progress``) within
  the ack wait (``WARMUP_WORK_ACK_WAIT_S``, default 30 s). A live worker sends ``in_progress`` every
  third of it while the account runs, so only a dead (or stuck) worker's item is handed out again.
- **Publishing is idempotent.** Each item carries ``Nats-Msg-Id: <run_id>/<account_id>``: a
  coordinator that retries a publish after a lost ack adds nothing.
- The item says which run and account; everything else (the task, the attempts so far) is read from
  the log, which stays the one truth. The queue only hands out work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from warmup.errors import WarmupError
from warmup.times import seconds_from_env

if TYPE_CHECKING:
    from warmup.log.nats import NatsLog

T = TypeVar("T")
ACK_WAIT_ENV = "WARMUP_WORK_ACK_WAIT_S"
DEFAULT_ACK_WAIT_S = 30.0
CONSUMER = "workers"


def ack_wait_s() -> float:
    return seconds_from_env(ACK_WAIT_ENV, DEFAULT_ACK_WAIT_S, minimum=1)


def _token(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else f"%{ord(c):02X}" for c in value)


@dataclass(frozen=True)
class WorkItem:
    run_id: str
    account_id: str

    def encode(self) -> bytes:
        return orjson.dumps({"run_id": self.run_id, "account_id": self.account_id})

    @classmethod
    def decode(cls, data: bytes) -> WorkItem | None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict):
            return None
        run_id, account_id = obj.get("run_id"), obj.get("account_id")
        if not isinstance(run_id, str) or not isinstance(account_id, str):
            return None
        return cls(run_id, account_id)


class WorkQueue:
    """The work-queue stream beside ``log`` and its shared consumer (see the module docstring)."""

    def __init__(self, log: NatsLog) -> None:
        self.log = log
        self.stream = f"{log.stream}_WORK"
        self.prefix = f"warmupwork.{log.stream}"
        self.ack_wait_s = ack_wait_s()
        self._psub: Any = None

    def subject(self, item: WorkItem) -> str:
        return f"{self.prefix}.{_token(item.run_id)}.{_token(item.account_id)}"

    # -- on the connection's loop ---------------------------------------------------------------
    async def _ensure(self) -> None:
        import nats.js.errors
        from nats.js.api import RetentionPolicy, StorageType

        js = self.log.connection.js
        try:
            await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            try:
                await js.add_stream(
                    name=self.stream, subjects=[f"{self.prefix}.>"], retention=RetentionPolicy.WORK_QUEUE,
                    storage=StorageType.FILE, num_replicas=self.log.replicas,
                )
            except nats.js.errors.BadRequestError:
                await js.stream_info(self.stream)  # created by another process meanwhile

    async def _publish(self, items: list[WorkItem]) -> None:
        await self._ensure()
        js = self.log.connection.js
        for item in items:
            for attempt in range(60):
                try:
                    await js.publish(self.subject(item), item.encode(), stream=self.stream,
                                     headers={"Nats-Msg-Id": f"{item.run_id}/{item.account_id}"})
                    break
                except Exception:
                    if attempt == 59:
                        raise
                    await asyncio.sleep(0.5)

    async def _purge_run(self, run_id: str) -> None:
        await self.log.connection.js.purge_stream(self.stream, subject=f"{self.prefix}.{_token(run_id)}.*")

    async def _subscribe(self) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        await self._ensure()
        config = ConsumerConfig(
            durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait_s, max_deliver=-1,
            deliver_policy=DeliverPolicy.ALL, max_ack_pending=-1,
        )
        psub = await self.log.connection.js.pull_subscribe(
            f"{self.prefix}.>", durable=CONSUMER, stream=self.stream, config=config
        )
        # The consumer keeps the ack wait it was created with (by the first worker): beat by that one.
        info = await psub.consumer_info()
        if info.config.ack_wait:
            self.ack_wait_s = float(info.config.ack_wait)
        return psub

    async def _fetch(self, timeout_s: float) -> Any | None:
        import nats.errors

        if self._psub is None:
            self._psub = await self._subscribe()
        try:
            msgs = await self._psub.fetch(1, timeout=timeout_s)
        except (TimeoutError, nats.errors.TimeoutError):
            return None
        return msgs[0] if msgs else None

    # -- from any thread or loop ----------------------------------------------------------------
    def publish(self, items: list[WorkItem]) -> None:
        """Put ``items`` on the queue (synchronously: the coordinator); ``WarmupError`` (one line) if not."""
        self._sync(self._publish(items), 60 + len(items), "queue the accounts")

    def purge_run(self, run_id: str) -> None:
        """Drop the items of ``run_id`` still waiting (the coordinator was stopped)."""
        self._sync(self._purge_run(run_id), 30, "drop the run's queued accounts")

    def _sync(self, coro: Coroutine[Any, Any, Any], timeout: float, what: str) -> None:
        try:
            self.log.call(coro, timeout=timeout)
        except WarmupError:
            raise
        except Exception as exc:  # nats-py raises several kinds: one line for people
            raise WarmupError(f"cannot {what} on {self.stream} at {self.log.name}: {type(exc).__name__}") from None

    async def on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the connection's loop from another loop (a worker's), never blocking it."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.log.connection.loop))

    async def fetch(self, timeout_s: float = 1.0) -> Any | None:
        """The next item's message (``Msg``), or None after ``timeout_s`` without one."""
        return await self.on_loop(self._fetch(timeout_s))

    async def in_progress(self, msg: Any) -> None:
        await self.on_loop(msg.in_progress())

    async def ack(self, msg: Any) -> None:
        await self.on_loop(msg.ack_sync(timeout=5))

    async def nak(self, msg: Any, delay_s: float) -> None:
        await self.on_loop(msg.nak(delay=delay_s))

    async def close(self) -> None:
        if self._psub is not None:
            psub, self._psub = self._psub, None
            try:
                await self.on_loop(psub.unsubscribe())
            except Exception:
                pass
