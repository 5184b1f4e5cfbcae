"""``Projector``: the core tables (and any projections given) from a log file, the way tests and
benches call it. The work is ``warmup.projector.runner.ProjectionRunner``'s; this only opens the log.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from warmup.log.file import FileLog
from warmup.projection import Projection
from warmup.projector.connect import refuse_inside_event_loop
from warmup.projector.runner import (
    DEFAULT_BATCH_BYTES,
    BatchResult,
    ProjectionRunner,
    StrictStop,
    VersionMismatch,
)
from warmup.projector.scope import Scope

__all__ = ["BatchResult", "Projector", "StrictStop", "VersionMismatch"]


class Projector(ProjectionRunner):
    """Projects the log file ``log_path`` into ``db_path`` (see ``ProjectionRunner``)."""

    def __init__(
        self,
        log_path: str | os.PathLike[str],
        db_path: str | os.PathLike[str],
        *,
        strict: bool = False,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        fast: bool = False,
        scope: Scope | None = None,
        projections: Iterable[Projection] = (),
    ) -> None:
        refuse_inside_event_loop()
        super().__init__(FileLog(log_path), db_path, projections, strict=strict, batch_bytes=batch_bytes,
                         fast=fast, scope=scope)
