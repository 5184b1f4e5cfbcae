"""``--projection MODULE:CLASS`` (or a built-in's name, ``steps``): from the text to a Projection object.

Every way it can be wrong is one line and exit 2 (``UsageError``): not ``MODULE:CLASS``, a module
that does not import (its own error said in one line), no such class, a class that is not a
Projection, no ``name``, two projections with one name. The user's module is imported here, in the
projector's process: never in the runner's (``warmup run`` passes the text on to its projector).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from warmup.errors import UsageError
from warmup.projection import Projection, SQLiteProjection

BUILTIN = {"steps": "warmup.projections.steps:Steps"}


def load_projection(spec: str, target: str | os.PathLike[str] | None = None) -> Projection:
    """A new instance of the projection ``spec`` names, writing to ``target`` (a SQLiteProjection's database)."""
    where = BUILTIN.get(spec, spec)
    module_name, sep, class_name = where.partition(":")
    if not sep or not module_name or not class_name:
        raise UsageError(
            f"--projection {spec!r}: expected MODULE:CLASS (e.g. myproject.tables:WarmCounts) "
            f"or a built-in ({', '.join(BUILTIN)})"
        )
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # (a module beside the user, as `python -m` would find it)
    try:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001
            if type(exc).__name__ != "AppRegistryNotReady" or not _set_up_django():
                raise
            module = importlib.import_module(module_name)  # (a Django app's module: Django is set up now)
    except Exception as exc:  # noqa: BLE001  (whatever the user's module raises: one line)
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UsageError(f"--projection {spec!r}: cannot import {module_name}: {type(exc).__name__}: {first}") from None
    obj: object = module
    for part in class_name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise UsageError(f"--projection {spec!r}: {module_name} has no {class_name}")
    if not (isinstance(obj, type) and issubclass(obj, Projection)):
        raise UsageError(
            f"--projection {spec!r}: {class_name} is not a Projection "
            "(subclass warmup.projection.SQLiteProjection or Projection)"
        )
    if not getattr(obj, "name", ""):
        raise UsageError(f"--projection {spec!r}: {class_name} has no name (set `name = \"...\"` on the class)")
    try:
        projection = obj()
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"--projection {spec!r}: {class_name}() failed: {type(exc).__name__}: {exc}") from None
    projection.spec = spec  # type: ignore[attr-defined]
    if target is not None:
        if not isinstance(projection, SQLiteProjection):
            raise UsageError(f"--target {target}: {spec} is not a SQLiteProjection, so it has no SQLite target")
        projection.target = Path(target)  # type: ignore[attr-defined]
    return projection


def _set_up_django() -> bool:
    """``django.setup()`` from ``DJANGO_SETTINGS_MODULE``, for a projection defined in a Django app
    (``--projection myapp.warmup_projections:X``); False when Django is not configured here."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return False
    import django

    django.setup()
    return True


def load_projections(specs: tuple[str, ...] | list[str], targets: tuple[str, ...] | list[str] = ()) -> list[Projection]:
    """Each spec with its target: one ``--target`` applies to all, or one per ``--projection``, in order."""
    if targets and len(targets) not in (1, len(specs)):
        raise UsageError(
            f"{len(targets)} --target for {len(specs)} --projection: give one --target for all, or one each"
        )
    if targets and not specs:
        raise UsageError("--target needs a --projection (the core tables go to --db)")
    loaded = []
    names: dict[str, str] = {"core": "core"}
    for i, spec in enumerate(specs):
        target = targets[i if len(targets) > 1 else 0] if targets else None
        projection = load_projection(spec, target)
        if projection.name in names:
            raise UsageError(
                f"--projection {spec!r}: the name {projection.name!r} is taken by {names[projection.name]}; "
                "each projection needs a name of its own"
            )
        names[projection.name] = spec
        loaded.append(projection)
    return loaded
