"""Browser identity: the Playwright ``new_context`` options a task sets for all accounts, and an
account for itself (an account's value overrides the task's).

SEAM (issue 11, point 1): ``IDENTITY_KEYS`` are accepted at task level and in an account table;
``check_identity`` validates one table's values (``where`` names it) and returns them as written
(references unresolved); ``identity_templates`` lists every string that may hold ``${...}``, so
the loader renders each one for each account and learns the ``${env.*}`` they use (secrets).
"""

from __future__ import annotations

from typing import Any

IDENTITY_KEYS: frozenset[str] = frozenset()


def check_identity(table: dict[str, Any], where: str) -> dict[str, Any]:
    """The identity keys of ``table``, checked; {} when it sets none."""
    return {k: table[k] for k in IDENTITY_KEYS if k in table}


def identity_templates(identity: dict[str, Any]) -> list[tuple[str, str]]:
    """(key path, template) for every string of ``identity`` that may hold references."""
    return []
