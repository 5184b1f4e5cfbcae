"""Default locations: ``$WARMUP_LOG`` / ``$WARMUP_DB``, else under ``./warmup-data/``."""

from __future__ import annotations

DEFAULT_LOG = "warmup-data/events.jsonl"
DEFAULT_DB = "warmup-data/warmup.db"
DEFAULT_ARTIFACTS = "warmup-data/artifacts"
