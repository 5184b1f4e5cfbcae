"""``script = "package.module:function"``: a task whose steps are written in Python.

The reference is resolved when the task is loaded (``resolve_script``), so a bad one costs one
line and exit 2 before any browser starts: not ``MODULE:FUNCTION``, a module that cannot be found
or raises on import, no such function, or one that is not ``async def f(page, account, step)``.

The module is looked up on the usual import path, then in the task file's folder (added at the
end of ``sys.path``, so a file there never shadows a library), so a ``warm.py`` beside the task
needs no install.
The function runs in the runner's process, on its event loop, like the TOML steps' actions: it
drives the page and never touches a database (the runner imports none).
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from warmup.errors import UsageError

SCRIPT_REF = re.compile(r"\A([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):([A-Za-z_][A-Za-z0-9_]*)\Z")
SCRIPT_PARAMS = ("page", "account", "step")


def resolve_script(ref: str, folder: Path, where: str) -> Callable[..., Any]:
    """The async function ``ref`` names, imported now; UsageError with one line otherwise."""
    at = f"{where}: script {ref!r}"
    match = SCRIPT_REF.match(ref)
    if not match:
        raise UsageError(f"{at} is not MODULE:FUNCTION (e.g. \"warm:run\" for async def run in warm.py)")
    module_name, function_name = match.groups()
    folder_text = str(folder.resolve())
    if folder_text not in sys.path:  # after the rest: a file beside the task never shadows a library
        sys.path.append(folder_text)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(f"{at}: no module {exc.name!r} (looked in {folder_text} and the import path)") from None
        raise UsageError(f"{at}: importing {module_name} failed: {_one_line(exc)}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the module raised (or called sys.exit) while importing: one line
        raise UsageError(f"{at}: importing {module_name} failed: {_one_line(exc)}") from None
    function = getattr(module, function_name, None)
    if function is None:
        raise UsageError(f"{at}: {module_name} has no function {function_name!r}")
    if not inspect.iscoroutinefunction(function):
        raise UsageError(
            f"{at}: {function_name} must be an async function: async def {function_name}(page, account, step)"
        )
    try:
        inspect.signature(function).bind(None, None, None)
    except TypeError:
        raise UsageError(
            f"{at}: {function_name} must take three arguments: async def {function_name}(page, account, step)"
        ) from None
    return function


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
