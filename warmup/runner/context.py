"""The options of an account's browser context: its storage state and its browser identity.

``context_options`` maps the task's and the account's identity (``warmup.tasks.identity``) onto
Playwright's ``new_context`` keyword arguments, rendering ``${...}`` for the account now (the
loader already rendered and checked every template, so rendering cannot fail here unless the
environment changed). Layers, later wins key by key: the task's ``device``, the task's keys, the
account's ``device``, the account's keys; ``extra_http_headers`` merge header by header.
``storage_state`` is the loaded state or None. The values returned may hold secrets: they go to
Playwright only, never to the log.
"""

from __future__ import annotations

from typing import Any

from warmup.tasks import Account, Task
from warmup.tasks.identity import device_options, merge_headers


def context_options(task: Task, account: Account, storage_state: dict[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments for ``Browser.new_context`` for one account."""
    options: dict[str, Any] = {}
    for identity in (task.identity, account.identity):
        if "device" in identity:
            options.update(device_options(task.render(identity["device"], account)))
        for key, value in identity.items():
            if key == "device":
                continue
            rendered = _rendered(task, account, value)
            if key == "extra_http_headers" and key in options:
                rendered = merge_headers(options[key], rendered)
            options[key] = rendered
    if "geolocation" in options:
        options["permissions"] = ["geolocation"]  # so pages can read the position they are given
    if storage_state is not None:
        options["storage_state"] = storage_state
    return options


def _rendered(task: Task, account: Account, value: Any) -> Any:
    """Every string of ``value`` (a string or a table of them, numbers as they are) rendered."""
    if isinstance(value, str):
        return task.render(value, account)
    if isinstance(value, dict):
        return {name: _rendered(task, account, item) for name, item in value.items()}
    return value
