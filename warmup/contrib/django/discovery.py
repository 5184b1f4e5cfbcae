"""Finding the projections of a Django project: each installed app's ``warmup_projections.py``.

The way Django finds ``admin.py``: ``autodiscover_modules("warmup_projections")`` imports the module of
every installed app that has one; the projections are the ``Projection`` subclasses *defined* in
those modules (a class merely imported there is found in the module that defines it) that have a
``name`` (a class without one is an abstract base, for others to subclass).

Invariant: the names are unique across the project (a name keys a checkpoint); a second class with a
name already taken is an error, never silently one of the two.
"""

from __future__ import annotations

import inspect
import sys

from warmup.errors import UsageError
from warmup.projection import Projection

MODULE = "warmup_projections"


def discover_projections() -> list[type[Projection]]:
    """The projection classes of every installed app: apps in ``INSTALLED_APPS`` order, classes in
    the order their module defines them."""
    from django.apps import apps
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules(MODULE)
    found: list[type[Projection]] = []
    where: dict[str, str] = {}
    for app in apps.get_app_configs():
        module = sys.modules.get(f"{app.name}.{MODULE}")
        if module is None:
            continue
        classes = [
            value for value in vars(module).values()
            if inspect.isclass(value) and issubclass(value, Projection) and value.__module__ == module.__name__
            and value.name
        ]  # fmt: skip
        for cls in classes:
            spec = f"{cls.__module__}.{cls.__qualname__}"
            if cls.name in where:
                raise UsageError(
                    f"two projections are named {cls.name!r}: {where[cls.name]} and {spec}; "
                    f"a name keys a checkpoint, so each must be unique"
                )
            where[cls.name] = spec
            found.append(cls)
    return found


def select(classes: list[type[Projection]], names: list[str]) -> list[type[Projection]]:
    """The classes named in ``names`` (all of them when ``names`` is empty); an unknown name is an error."""
    if not names:
        return classes
    known = {cls.name: cls for cls in classes}
    unknown = [n for n in names if n not in known]
    if unknown:
        listing = ", ".join(sorted(known)) or "none"
        raise UsageError(
            f"no projection named {unknown[0]!r}; the projections found in the installed apps' "
            f"{MODULE}.py are: {listing}"
        )
    return [known[n] for n in dict.fromkeys(names)]
