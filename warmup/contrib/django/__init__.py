"""Projections into Django models: ``DjangoProjection``, and the app that keeps its checkpoints.

Install with ``pip install 'warmup[django]'``, add ``"warmup.contrib.django"`` to ``INSTALLED_APPS``,
run ``python manage.py migrate`` (it creates the checkpoint table), write a projection in one of
your apps' ``warmup_projections.py``, and run ``python manage.py warmup_project [--follow]``.
``docs/django.md`` is the guide::

    from django.db.models import F
    from warmup.contrib.django import DjangoProjection
    from warmup.projection import on

    class AccountWarmth(DjangoProjection):
        name = "uploader_accounts"

        @on("account_finished")
        def finished(self, event, ctx):
            if event.status == "COMPLETED":
                Account.objects.filter(username=event.account_id).update(warm_count=F("warm_count") + 1)

        def clear(self):  # for a rebuild: undo what the handlers wrote
            Account.objects.update(warm_count=0)

Invariants:

- **Exactly once.** A batch's handlers and its checkpoint row are written in one
  ``transaction.atomic(using=self.using)``; an exception inside rolls both back. So a process killed
  at any instant loses or repeats nothing, and a duplicated line (rejected by the core projection)
  never reaches a handler.
- **Takes turns.** The first statement of every batch's transaction is a write (an UPDATE of this
  projection's checkpoint row): on SQLite it takes the database's write lock before anything is read,
  so two processes on one database wait for each other (SQLite's busy timeout, then a retry here)
  rather than failing with "database is locked" on a read-to-write lock upgrade. On a server
  database the UPDATE locks the projection's checkpoint row once it exists.
- **Synchronous.** Handlers run in the projector's own process, outside any event loop, so the ORM
  is simply allowed: ``DJANGO_ALLOW_ASYNC_UNSAFE`` is never needed.
- **Light to import.** This module imports no Django module at import time (Django is imported
  when a projection is used), so ``import warmup.contrib.django`` needs no settings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from warmup.errors import WarmupError
from warmup.projection import CHECKPOINT_COLUMNS, Checkpoint, Projection

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Model

__all__ = ["ClearNotDefined", "DjangoProjection"]

LOCK_RETRY_S = 0.05  # between two attempts to take the write lock, after the busy timeout expired


def _checkpoint_model() -> type[Model]:
    """The checkpoint model, imported only now: it needs Django's settings and app registry."""
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    try:
        if not apps.ready:  # used outside manage.py: set Django up from DJANGO_SETTINGS_MODULE
            import django

            django.setup()
        from warmup.contrib.django.models import ProjectionCheckpoint
    except (ImproperlyConfigured, RuntimeError) as exc:
        raise WarmupError(
            f"a DjangoProjection needs Django set up with 'warmup.contrib.django' in INSTALLED_APPS "
            f"(run it with `python manage.py warmup_project`, or set DJANGO_SETTINGS_MODULE): {exc}"
        ) from exc
    return ProjectionCheckpoint


def _is_lock_timeout(exc: BaseException) -> bool:
    """SQLite's "database is locked" (the busy timeout expired while another process wrote)."""
    from django.db import OperationalError

    return isinstance(exc, OperationalError) and "locked" in str(exc)


class ClearNotDefined(WarmupError, NotImplementedError):
    """A rebuild of a DjangoProjection that has no ``clear()``: said on one line, exit 1."""


class DjangoProjection(Projection):
    """A projection whose handlers write Django models, in the database ``using`` (an alias of
    ``settings.DATABASES``); its checkpoint is a row of ``warmup_django_checkpoint`` there.

    Subclasses set ``name`` (and ``version``), write ``@on`` handlers that use the ORM (``ctx.conn``
    is the Django connection), and define ``clear()`` so that the projection can be rebuilt
    (``warmup_project --rebuild``, or a ``version`` bump).
    """

    using: ClassVar[str] = "default"

    # -- what a subclass writes --------------------------------------------------------------
    def clear(self) -> None:
        """Inside the rebuild's transaction: delete (or zero) everything the handlers wrote, so that
        replaying the whole log gives the same rows as applying it once. Required for a rebuild."""
        raise ClearNotDefined(
            f"projection {self.name!r} cannot be rebuilt: define clear() in {type(self).__name__} "
            f"to delete (or zero) what its handlers wrote; the rebuild then replays the log"
        )

    # -- the target --------------------------------------------------------------------------
    def setup(self) -> None:
        """Check that the database alias exists and that ``migrate`` created the checkpoint table.

        It takes the write lock once (an empty transaction), so a busy database is waited for here
        as in every batch, never read while another process commits.
        """
        from django.db import DatabaseError, connections

        model = _checkpoint_model()
        if self.using not in connections:
            raise WarmupError(f"projection {self.name!r}: no database {self.using!r} in settings.DATABASES")
        try:
            with self.transaction():
                pass
        except DatabaseError:
            table = model._meta.db_table
            if table in connections[self.using].introspection.table_names():
                raise
            raise WarmupError(
                f"projection {self.name!r}: the database {self.using!r} has no table {table}: "
                f"run `python manage.py migrate --database {self.using}` first"
            ) from None

    @contextmanager
    def transaction(self) -> Iterator[BaseDatabaseWrapper]:
        """``transaction.atomic(using=self.using)``, whose first statement takes the write lock.

        If the lock cannot be had within the connection's busy timeout, the (still empty)
        transaction is rolled back and tried again, for as long as another process holds the lock:
        nothing has been read or written in it yet, so retrying is always safe. Yields the connection.
        """
        from django.db import connections, transaction

        connection = connections[self.using]
        nested = connection.in_atomic_block  # a savepoint of someone else's transaction: no retry
        while True:
            atomic = transaction.atomic(using=self.using)
            atomic.__enter__()
            try:
                self._take_write_lock()
            except BaseException as exc:
                atomic.__exit__(type(exc), exc, exc.__traceback__)  # rolls back
                if nested or not _is_lock_timeout(exc):
                    raise
                time.sleep(LOCK_RETRY_S)
                continue
            break
        try:
            yield connection
        except BaseException as exc:
            atomic.__exit__(type(exc), exc, exc.__traceback__)  # rolls back; never swallows
            raise
        atomic.__exit__(None, None, None)  # commits

    def _take_write_lock(self) -> None:
        """A write as the transaction's first statement: ``UPDATE ... SET version = version``.

        On SQLite even an UPDATE that matches no row (before the first checkpoint) takes the
        database's write lock.
        """
        from django.db.models import F

        _checkpoint_model().objects.using(self.using).filter(name=self.name).update(version=F("version"))

    def load_checkpoint(self) -> Checkpoint | None:
        row = (
            _checkpoint_model().objects.using(self.using).filter(name=self.name)
            .values_list(*CHECKPOINT_COLUMNS).first()
        )
        return Checkpoint(*row) if row is not None else None

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        values: dict[str, Any] = {c: getattr(checkpoint, c) for c in CHECKPOINT_COLUMNS}
        _checkpoint_model()(**values).save(using=self.using)

    def reset(self) -> None:
        """Inside ``transaction()``: ``clear()``, then forget the checkpoint (a rebuild follows)."""
        self.clear()
        _checkpoint_model().objects.using(self.using).filter(name=self.name).delete()

    def close(self) -> None:
        from django.db import connections

        if self.using in connections:
            connections[self.using].close()

    def describe_target(self) -> str:
        try:
            from django.conf import settings

            where = settings.DATABASES[self.using].get("NAME")
        except Exception:  # settings not configured, no such alias: say what we know
            where = None
        return f"Django database {self.using!r}" + (f" ({where})" if where else "")
