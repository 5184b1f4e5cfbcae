"""The models of the original app (an uploader of account sessions), kept current from the event log.

``Account`` is the app's own (warmup never creates its other fields); ``WarmupTask`` (one per run)
and ``WarmupTaskAccount`` (one per run and account) are written only by the projection in
``warmup_projections.py``.
"""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import F
from django.utils import timezone


class Account(models.Model):
    username = models.CharField(max_length=150, unique=True)
    is_warmed = models.BooleanField(default=False)
    warm_count = models.PositiveIntegerField(default=0)
    last_warmed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.username

    def mark_as_warmed(self, at: datetime | None = None) -> None:
        """The account completed a warm-up ``at`` (the event's time when a projection calls it)."""
        at = at or timezone.now()
        Account.objects.filter(pk=self.pk).update(is_warmed=True, warm_count=F("warm_count") + 1, last_warmed_at=at)


class Status(models.TextChoices):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    INTERRUPTED = "INTERRUPTED"


class WarmupTask(models.Model):
    """One run of a warm-up task."""

    run_id = models.CharField(max_length=64, unique=True)
    task_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    accounts_total = models.PositiveIntegerField(default=0)
    accounts_completed = models.PositiveIntegerField(default=0)
    accounts_failed = models.PositiveIntegerField(default=0)
    accounts = models.ManyToManyField(Account, through="WarmupTaskAccount", related_name="warmup_tasks")

    def __str__(self) -> str:
        return f"{self.name} ({self.run_id}): {self.status}"


class WarmupTaskAccount(models.Model):
    """One account in one run: its status, when it started and ended, and what went wrong."""

    task = models.ForeignKey(WarmupTask, on_delete=models.CASCADE, related_name="task_accounts")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="task_accounts")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    log = models.TextField(blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "account"], name="uploader_one_row_per_run_account")]

    def __str__(self) -> str:
        return f"{self.account} in {self.task.run_id}: {self.status}"


class StepStat(models.Model):
    """Steps per action, ok and failed (a second, independent projection)."""

    action = models.CharField(max_length=50, unique=True)
    ok = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
