"""The recipe of docs/django.md: WarmupTask, WarmupTaskAccount and Account.mark_as_warmed, driven by the log.

``python manage.py warmup_project`` finds these classes (this module is the app's
``warmup_projections.py``). Each handler writes what one event says, with the event's own time;
``clear()`` undoes everything, for ``--rebuild``.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils.dateparse import parse_datetime

from warmup.contrib.django import DjangoProjection
from warmup.projection import Context, on

from .models import Account, Status, StepStat, WarmupTask, WarmupTaskAccount


def when(ts: str) -> datetime:
    """The event's time (``2026-11-29T07:00:00.123456Z``) as an aware datetime."""
    parsed = parse_datetime(ts)
    assert parsed is not None, ts
    return parsed


class WarmupTasks(DjangoProjection):
    """One WarmupTask per run, one WarmupTaskAccount per run and account, and Account.mark_as_warmed()."""

    name = "uploader_warmup_tasks"
    version = 1

    @staticmethod
    def _row(event: Any) -> Any:
        return WarmupTaskAccount.objects.filter(task__run_id=event.run_id, account__username=event.account_id)

    @on("run_started")
    def run_started(self, event, ctx: Context) -> None:
        task = WarmupTask.objects.create(
            run_id=event.run_id, task_id=ctx.run.task_id, name=ctx.run.task_name, status=Status.RUNNING,
            started_at=when(event.ts), accounts_total=len(event.accounts),
        )
        for username in event.accounts:  # accounts the app does not know yet are added
            account, _ = Account.objects.get_or_create(username=username)
            WarmupTaskAccount.objects.create(task=task, account=account, status=Status.PENDING)

    @on("account_started")
    def account_started(self, event, ctx: Context) -> None:
        rows = self._row(event)
        rows.filter(started_at__isnull=True).update(started_at=when(event.ts))
        rows.update(status=Status.RUNNING, attempt=event.attempt,
                    log=Concat(F("log"), Value(f"{event.ts} attempt {event.attempt} started\n")))

    @on("step_finished")
    def step_finished(self, event, ctx: Context) -> None:
        if not event.ok:
            line = f"{event.ts} step {event.index + 1} ({event.action}) failed: {event.error}\n"
            self._row(event).update(log=Concat(F("log"), Value(line)))

    @on("account_finished")
    def account_finished(self, event, ctx: Context) -> None:
        rows = self._row(event)
        if event.retrying:  # another attempt follows: the account stays RUNNING
            line = f"{event.ts} attempt {ctx.attempt} failed, retrying: {event.error}\n"
            rows.update(log=Concat(F("log"), Value(line)))
            return
        line = f"{event.ts} {event.status}" + (f": {event.error}" if event.error else "") + "\n"
        rows.update(status=event.status, completed_at=when(event.ts), log=Concat(F("log"), Value(line)))
        counter = {"COMPLETED": "accounts_completed", "FAILED": "accounts_failed"}.get(event.status)
        if counter:
            WarmupTask.objects.filter(run_id=event.run_id).update(**{counter: F(counter) + 1})
        if event.status == "COMPLETED":
            account = Account.objects.get(username=event.account_id)
            account.mark_as_warmed(at=when(event.ts))

    @on("run_finished")
    def run_finished(self, event, ctx: Context) -> None:
        WarmupTask.objects.filter(run_id=event.run_id).update(status=ctx.run.status, completed_at=when(event.ts))

    def clear(self) -> None:
        WarmupTaskAccount.objects.all().delete()
        WarmupTask.objects.all().delete()
        Account.objects.update(is_warmed=False, warm_count=0, last_warmed_at=None)


class StepStats(DjangoProjection):
    """Steps per action, ok and failed: a second projection, to be selected with --projection."""

    name = "uploader_step_stats"
    version = int(os.environ.get("WARMUP_TEST_STEP_STATS_VERSION", "1"))  # (a test bumps it)

    @on("step_finished")
    def step_finished(self, event, ctx: Context) -> None:
        stat, _ = StepStat.objects.get_or_create(action=event.action)
        field = "ok" if event.ok else "failed"
        StepStat.objects.filter(pk=stat.pk).update(**{field: F(field) + 1})

    def clear(self) -> None:
        StepStat.objects.all().delete()
