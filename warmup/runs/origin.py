"""Why a run started: ``run_started.trigger`` (and ``scheduled_for`` for a schedule's firing).

The four triggers are defined here once. ``warmup run`` records ``cli`` unless told otherwise;
``warmup serve`` starts its runs with ``--trigger api|dashboard|schedule`` (and, for a schedule,
``--scheduled-for`` the firing's due time, which is how a restarted server knows what it missed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

CLI = "cli"
SCHEDULE = "schedule"
API = "api"
DASHBOARD = "dashboard"
TRIGGERS = (CLI, SCHEDULE, API, DASHBOARD)

# new_run_id()'s shape: what `warmup run --run-id` accepts (a server names the run before it starts)
RUN_ID_SHAPE = re.compile(r"\A\d{8}T\d{6}-[0-9a-f]{6}\Z")


@dataclass(frozen=True)
class RunOrigin:
    """``trigger`` is one of ``TRIGGERS``; ``scheduled_for`` (a UTC timestamp) only with ``schedule``."""

    trigger: str = CLI
    scheduled_for: str | None = None

    def __post_init__(self) -> None:
        if self.trigger not in TRIGGERS:
            raise ValueError(f"trigger {self.trigger!r} is not one of {', '.join(TRIGGERS)}")
        if self.scheduled_for is not None and self.trigger != SCHEDULE:
            raise ValueError("scheduled_for goes with the schedule trigger only")

    def fields(self) -> dict[str, Any]:
        """The optional ``run_started`` fields this origin adds."""
        out: dict[str, Any] = {"trigger": self.trigger}
        if self.scheduled_for is not None:
            out["scheduled_for"] = self.scheduled_for
        return out


FROM_CLI = RunOrigin()  # the default: a run started by `warmup run` at a terminal
