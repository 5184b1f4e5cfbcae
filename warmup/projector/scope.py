"""Scope: which events a partial replay applies (``--until TS``, ``--run ID``...).

A full projection has no scope. A scoped one (the tables as they stood at an instant, or a few runs
only) is recorded in the checkpoint, and ``warmup project`` refuses to extend it: appending the
rest of the log to a point-in-time picture would make it neither the past nor the present.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from warmup.events.envelope import EventBase
from warmup.times import parse_log_ts


@dataclass(frozen=True)
class Scope:
    until: str | None = None  # in the log's ts format: compared as strings, which orders them in time
    run_ids: frozenset[str] = frozenset()

    @classmethod
    def from_options(cls, until: str | None, run_ids: tuple[str, ...] | list[str]) -> Scope | None:
        if until is None and not run_ids:
            return None
        return cls(parse_log_ts(until, "--until") if until is not None else None, frozenset(run_ids))

    def includes(self, event: EventBase) -> bool:
        if self.until is not None and event.ts > self.until:
            return False
        return not self.run_ids or getattr(event, "run_id", None) in self.run_ids

    def to_json(self) -> str:
        return orjson.dumps({"until": self.until, "runs": sorted(self.run_ids)}).decode()

    def describe(self) -> str:
        parts = []
        if self.until:
            parts.append(f"--until {self.until}")
        parts.extend(f"--run {r}" for r in sorted(self.run_ids))
        return " ".join(parts)

    @classmethod
    def from_json(cls, text: str) -> Scope:
        data = orjson.loads(text)
        return cls(data.get("until"), frozenset(data.get("runs") or ()))
