"""Task files: what ``warmup run`` executes. ``docs/tasks.md`` documents the format.

The package's parts, one job each:

- ``common``: names, limits and the small type checks every part uses;
- ``accounts``: accounts from ``[[accounts]]`` tables or an accounts file;
- ``actions``: each action's value and fields, and their checks;
- ``steps``: one ``[[steps]]`` table checked into a ``Step``;
- ``model``: the loaded ``Task``, rendering of ``${...}``, what is secret;
- ``scrubber``: hides secret values in every text the runner writes;
- ``loader``: reads a file (or a run's record) and checks everything before a browser starts.
"""

from warmup.tasks.accounts import Account
from warmup.tasks.actions import ACTIONS, ActionSpec
from warmup.tasks.common import REDACTED, SAFE_ID, SECRET_VAR, references
from warmup.tasks.loader import load_task, task_from_record
from warmup.tasks.model import Task
from warmup.tasks.scrubber import Scrubber
from warmup.tasks.steps import Step

__all__ = [
    "ACTIONS",
    "REDACTED",
    "SAFE_ID",
    "SECRET_VAR",
    "Account",
    "ActionSpec",
    "Scrubber",
    "Step",
    "Task",
    "load_task",
    "references",
    "task_from_record",
]
