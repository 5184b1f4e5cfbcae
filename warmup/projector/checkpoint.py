"""The checkpoint: how far into the log the tables are, and a fingerprint of what came before.

**Same transaction as the rows.** The checkpoint row is written in the very SQLite transaction that
writes the rows of the events it covers. Either both are committed or neither is, so a projector
killed at any instant leaves tables and checkpoint that agree: rerun, and it continues at exactly
the first event not yet applied. No event is applied twice, none is skipped.

**Re-read inside the write transaction.** A batch starts with ``BEGIN IMMEDIATE`` (the database's
write lock) and only then reads the checkpoint, so two projectors on one database take turns and
each continues from where the other committed.

**Fingerprint.** The offset alone cannot tell a grown log from a replaced one. The checkpoint keeps
the SHA-256 of the log's first 4 KiB and of the 4 KiB before the offset (lines hold unique event
ids, so another file, or a log edited near the checkpoint, hashes differently), and the log must
still be at least ``offset`` bytes long. A mismatch stops the projector with the advice to replay.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import astuple, dataclass

from warmup.errors import WarmupError
from warmup.projections.core.schema import CHECKPOINT, PROJECTION_VERSION

FINGERPRINT_BYTES = 4096


class LogMismatch(WarmupError):
    """The log no longer matches the database's checkpoint (exit 1, advise ``warmup replay``)."""


@dataclass
class Checkpoint:
    id: int = 1
    log_path: str | None = None
    offset: int = 0
    last_event_id: str | None = None
    last_event_ts: str | None = None
    head_sha256: str | None = None
    tail_sha256: str | None = None
    events_applied: int = 0
    events_rejected: int = 0
    projection_version: int = PROJECTION_VERSION
    scope: str | None = None


def read(conn: sqlite3.Connection) -> Checkpoint | None:
    cols = ", ".join(f'"{c}"' for c in CHECKPOINT.column_names)
    row = conn.execute(f'SELECT {cols} FROM "{CHECKPOINT.name}" WHERE id = 1').fetchone()
    return Checkpoint(*row) if row else None


def write(conn: sqlite3.Connection, checkpoint: Checkpoint) -> None:
    """Store the checkpoint; the caller commits it together with the rows it covers."""
    conn.execute(CHECKPOINT.insert_sql, astuple(checkpoint))


def fingerprint(fd: int, offset: int) -> tuple[str | None, str | None]:
    """SHA-256 of the first and of the last FINGERPRINT_BYTES before ``offset``."""
    if offset == 0:
        return None, None
    head = os.pread(fd, min(offset, FINGERPRINT_BYTES), 0)
    start = max(0, offset - FINGERPRINT_BYTES)
    tail = os.pread(fd, offset - start, start)
    return hashlib.sha256(head).hexdigest(), hashlib.sha256(tail).hexdigest()


def verify(checkpoint: Checkpoint, fd: int, log_path: str) -> None:
    """Raise LogMismatch unless the log still holds, unchanged, the bytes the checkpoint covers."""
    if checkpoint.offset == 0:
        return
    size = os.fstat(fd).st_size
    hint = "Run `warmup replay` to rebuild the tables from this log."
    if size < checkpoint.offset:
        raise LogMismatch(
            f"the log {log_path} is shorter ({size} bytes) than the database's checkpoint "
            f"({checkpoint.offset} bytes): it was truncated or replaced. {hint}"
        )
    if fingerprint(fd, checkpoint.offset) != (checkpoint.head_sha256, checkpoint.tail_sha256):
        raise LogMismatch(
            f"the log {log_path} is not the one the database was built from "
            f"(its bytes before offset {checkpoint.offset} differ). {hint}"
        )
