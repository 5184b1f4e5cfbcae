"""Leases in a JetStream key-value bucket: run and account liveness beside a stream log.

The bucket ``<STREAM>_LEASES`` has a TTL (``WARMUP_LEASE_TTL_S``, default 15 s): a key not written
for that long is removed by the server. Keys:

    run.<run_id>          the run's lease, held by its runner (or its ``--workers`` coordinator)
    account.<account_id>  the account's lease, held by the process driving it (a runner, a worker)
    recover.<run_id>      a recoverer closing the dead run (so two never close one run twice)

Each value is a holder's JSON (``run_id``, ``host``, ``pid``, ``since``), as in a lock file.

Invariants, and why they hold:

- **Taking is atomic.** ``create`` succeeds only if the key is absent (or deleted): two processes
  can never both hold one lease.
- **Renewing is compare-and-set.** The process's renewer (one thread-safe task on the connection's
  loop) rewrites each held key every TTL/3 with ``update(last=<our revision>)``. A key that expired
  and was taken by another is never overwritten: the renewal fails with a wrong last sequence,
  and the lease is *lost* (``on_lost`` is called: a worker stops driving that account). A renewal
  that fails for another reason (a node down, an election) is retried at the next tick; if no
  renewal succeeded for a whole TTL, the lease counts as lost too.
- **A dead holder's lease expires on every host** after the TTL: ``cross_host`` is True, so
  ``recover`` closes such runs wherever it runs, without ``--force``.
- **Dead runs** are the runs with ``run_started`` and no ``run_finished`` in the log (read from the
  stream's ``run_started``/``run_finished`` subjects only) whose ``run.<id>`` key is gone.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import orjson

from warmup.errors import UsageError
from warmup.events.envelope import EventDecoder, InvalidEvent, RunFinished, RunStarted, host_and_pid, utc_now
from warmup.locks import Holder
from warmup.runs.liveness import AccountLease, DeadRun, Liveness, RunLease
from warmup.times import seconds_from_env

if TYPE_CHECKING:
    from warmup.log.nats import NatsLog

TTL_ENV = "WARMUP_LEASE_TTL_S"
DEFAULT_TTL_S = 15.0
READ_BYTES = 1 << 20


def lease_ttl_s() -> float:
    return seconds_from_env(TTL_ENV, DEFAULT_TTL_S, minimum=1)


class LeaseError(OSError):
    """The bucket could not be reached or written: a lease could not be taken (one line, for people)."""


def holder_json(run_id: str) -> bytes:
    host, pid = host_and_pid()
    return orjson.dumps({"run_id": run_id, "host": host, "pid": pid, "since": utc_now()})


def parse_holder(value: bytes | None) -> Holder:
    try:
        data: Any = orjson.loads(value or b"{}")
    except orjson.JSONDecodeError:
        return Holder()
    if not isinstance(data, dict):
        return Holder()
    pid = data.get("pid")
    return Holder(str(data.get("run_id", "?")), str(data.get("host", "?")), pid if isinstance(pid, int) else 0,
                  str(data.get("since", "")))


class _Held:
    """One key this process holds: its revision, when it was last renewed, who to tell if lost."""

    def __init__(self, key: str, value: bytes, revision: int, on_lost: Callable[[str], None] | None) -> None:
        self.key, self.value, self.revision, self.on_lost = key, value, revision, on_lost
        self.renewed = time.monotonic()
        self.lost: str | None = None


class Bucket:
    """The leases bucket of one stream log, with this process's renewer."""

    def __init__(self, log: NatsLog, ttl_s: float | None = None) -> None:
        self.log = log
        self.name = f"{log.stream}_LEASES"
        self.ttl_s = ttl_s if ttl_s is not None else lease_ttl_s()
        self._kv: Any = None
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._renewer: Any = None

    # -- the bucket -----------------------------------------------------------------------------
    async def _bucket(self) -> Any:
        if self._kv is None:
            import nats.js.errors

            js = self.log.connection.js
            try:
                self._kv = await js.key_value(self.name)
            except nats.js.errors.BucketNotFoundError:
                self._kv = await js.create_key_value(
                    bucket=self.name, ttl=self.ttl_s, history=1, replicas=self.log.replicas,
                    description="warmup run and account leases",
                )
        return self._kv

    def _call(self, coro: Any, what: str) -> Any:
        try:
            return self.log.call(coro, timeout=30)
        except (UsageError, LeaseError):
            raise
        except Exception as exc:  # nats-py raises several kinds: one line for people
            raise LeaseError(5, f"cannot {what} in the bucket {self.name} on {self.log.name}: "
                                f"{type(exc).__name__}") from None

    # -- leases ---------------------------------------------------------------------------------
    def take(self, key: str, value: bytes, on_lost: Callable[[str], None] | None = None) -> Holder | None:
        """Take ``key`` if nobody holds it (None), else the holder's description."""
        import nats.js.errors

        async def create() -> tuple[int | None, bytes | None]:
            kv = await self._bucket()
            try:
                try:
                    return await kv.create(key, value), None
                except nats.js.errors.KeyNotFoundError:
                    # nats-py's create found the key, then looked for its delete marker, and the key's
                    # TTL removed it in between: it is free now, so create again (once)
                    return await kv.create(key, value), None
            except nats.js.errors.KeyWrongLastSequenceError:
                try:
                    entry = await kv.get(key)
                except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                    return None, b"{}"  # (gone meanwhile: held a moment ago; the caller tries again)
                return None, entry.value

        revision, other = self._call(create(), f"take the lease {key}")
        if revision is None:
            return parse_holder(other)
        with self._lock:
            self._held[key] = _Held(key, value, revision, on_lost)
        self._start_renewer()
        return None

    def give_back(self, key: str, *, delete: bool = True) -> None:
        """Stop renewing ``key``; ``delete`` it (only if it is still ours), else let it expire."""
        with self._lock:
            held = self._held.pop(key, None)
        if held is None or not delete or held.lost is not None:
            return

        async def remove() -> None:
            kv = await self._bucket()
            await kv.delete(key, last=held.revision)

        try:
            self._call(remove(), f"release the lease {key}")
        except LeaseError:
            pass  # (it expires after the TTL all the same)

    def holder(self, key: str) -> Holder | None:
        import nats.js.errors

        async def get() -> bytes | None:
            kv = await self._bucket()
            try:
                entry = await kv.get(key)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                return None
            return entry.value  # type: ignore[no-any-return]

        value = self._call(get(), f"read the lease {key}")
        return None if value is None else parse_holder(value)

    # -- renewing -------------------------------------------------------------------------------
    def _start_renewer(self) -> None:
        with self._lock:
            if self._renewer is not None:
                return  # (it stops only under this lock, once nothing is held: see _renew_forever)
            self._renewer = asyncio.run_coroutine_threadsafe(self._renew_forever(), self.log.connection.loop)

    async def _renew_forever(self) -> None:
        """Every TTL/3: renew every held key at once, each try bounded by TTL/6. A key is lost when
        another process holds it, or when no renewal *sent* in the last 2/3 of the TTL got through
        (the server may have removed it by then). Exits, under the lock, once nothing is held."""
        interval = self.ttl_s / 3
        while True:
            await asyncio.sleep(interval)
            with self._lock:
                held = [h for h in self._held.values() if h.lost is None]
                if not self._held:
                    self._renewer = None
                    return
            await asyncio.gather(*(self._renew(h) for h in held))

    async def _renew(self, h: _Held) -> None:
        import nats.js.errors

        sent = time.monotonic()
        try:
            kv = await self._bucket()
            h.revision = await asyncio.wait_for(kv.update(h.key, h.value, last=h.revision), self.ttl_s / 6)
            h.renewed = sent
        except nats.js.errors.KeyWrongLastSequenceError:
            await self._recheck(h, sent)
        except Exception:  # a node down, an election: try again at the next tick
            if time.monotonic() - h.renewed > self.ttl_s * 2 / 3:
                self._lose(h, f"it could not be renewed for {self.ttl_s * 2 / 3:g} s")

    async def _recheck(self, h: _Held, sent: float) -> None:
        """A renewal found another revision: ours if a renewal was stored but its ack lost (keep it);
        gone (expired: take it again, nobody did); else another process holds it (lost)."""
        import nats.js.errors

        kv = await self._bucket()
        try:
            entry = await kv.get(h.key)
            if entry.value == h.value:
                h.revision, h.renewed = entry.revision, sent
                return
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            try:
                h.revision = await kv.create(h.key, h.value)
                h.renewed = sent
                return
            except Exception:
                pass
        except Exception:
            return  # (cannot tell now: the next tick looks again)
        self._lose(h, "it expired and another process took it")

    def _lose(self, held: _Held, why: str) -> None:
        held.lost = why
        if held.on_lost is not None:
            try:
                held.on_lost(why)
            except Exception:
                pass


_BUCKETS: dict[tuple[str, str], Bucket] = {}
_BUCKETS_LOCK = threading.Lock()


def bucket_for(log: NatsLog) -> Bucket:
    """The process's one ``Bucket`` (and renewer) for ``log``'s stream."""
    key = (log.name, log.stream)
    with _BUCKETS_LOCK:
        if key not in _BUCKETS:
            _BUCKETS[key] = Bucket(log)
        return _BUCKETS[key]


class KvRunLease(RunLease):
    def __init__(self, bucket: Bucket, run_id: str) -> None:
        self.bucket, self.run_id = bucket, run_id
        self.key = f"run.{key_token(run_id)}"
        self.where = f"{bucket.name}/{self.key}"

    def acquire(self) -> None:
        holder = self.bucket.take(self.key, holder_json(self.run_id))
        if holder is not None:
            raise LeaseError(17, f"the run lease {self.where} is held by {holder.describe()}")

    def release(self, *, remove: bool) -> None:
        # Without ``remove`` the key is left to expire: the run then counts as dead for recover.
        self.bucket.give_back(self.key, delete=remove)


def key_token(value: str) -> str:
    """``value`` as one token of a key: every character but letters, digits, ``_`` and ``-`` as ``%XX``
    would do in a subject, here ``=XX`` (a key takes ``=`` but not ``%``; ``.`` separates tokens)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else f"={ord(c):02X}" for c in value)


class KvAccountLease(AccountLease):
    def __init__(self, bucket: Bucket, account_id: str, run_id: str,
                 on_lost: Callable[[str], None] | None = None) -> None:
        self.bucket, self.run_id = bucket, run_id
        self.key = f"account.{key_token(account_id)}"
        self.where = f"{bucket.name}/{self.key}"
        self.on_lost = on_lost
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def try_acquire(self) -> Holder | None:
        if self._held:
            return None
        holder = self.bucket.take(self.key, holder_json(self.run_id), self.on_lost)
        self._held = holder is None
        return holder

    def release(self) -> None:
        if self._held:
            self._held = False
            self.bucket.give_back(self.key)


class _KvDeadRun(DeadRun):
    def __init__(self, bucket: Bucket, run_id: str, holder: Holder) -> None:
        self.bucket, self.run_id, self.holder = bucket, run_id, holder
        self.key = f"recover.{key_token(run_id)}"

    def closed(self) -> None:
        self.bucket.give_back(self.key)

    def leave(self) -> None:
        self.bucket.give_back(self.key)


class KvLiveness(Liveness):
    """Leases in ``<STREAM>_LEASES``; see the module docstring."""

    cross_host = True

    def __init__(self, log: NatsLog) -> None:
        self.log = log
        self.bucket = bucket_for(log)

    @classmethod
    def for_log(cls, log: Any) -> KvLiveness:
        return cls(log)

    def run_lease(self, run_id: str) -> KvRunLease:
        return KvRunLease(self.bucket, run_id)

    def account_lease(self, account_id: str, run_id: str,
                      on_lost: Callable[[str], None] | None = None) -> KvAccountLease:
        return KvAccountLease(self.bucket, account_id, run_id, on_lost)

    def open_runs(self) -> dict[str, RunStarted]:
        """The runs with ``run_started`` and no ``run_finished``, read from those subjects only."""
        from warmup.log import LogMissing

        log = self.log.narrowed(types=("run_started", "run_finished"))
        started: dict[str, RunStarted] = {}
        finished: set[str] = set()
        decode = EventDecoder()
        try:
            reader = log.reader()
        except LogMissing:
            return {}
        with reader:
            position = log.START
            while (batch := reader.read(position, READ_BYTES)).lines:
                position = batch.end
                for line in batch.lines:
                    try:
                        event = decode(line)
                    except InvalidEvent:
                        continue
                    if isinstance(event, RunStarted):
                        started.setdefault(event.run_id, event)
                    elif isinstance(event, RunFinished):
                        finished.add(event.run_id)
        return {run_id: event for run_id, event in started.items() if run_id not in finished}

    def dead_runs(self) -> Iterator[DeadRun]:
        for run_id, started in self.open_runs().items():
            if self.bucket.holder(f"run.{key_token(run_id)}") is not None:
                continue  # alive: its runner renews its lease
            holder = Holder(run_id, started.host or "?", started.pid or 0, started.ts)
            dead = _KvDeadRun(self.bucket, run_id, holder)
            if self.bucket.take(dead.key, holder_json(run_id)) is not None:
                continue  # another recoverer is closing it
            try:
                yield dead
            finally:
                dead.leave()

    def run_holder(self, run_id: str) -> Holder | None:
        return self.bucket.holder(f"run.{key_token(run_id)}")
