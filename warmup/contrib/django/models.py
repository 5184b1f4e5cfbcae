"""The checkpoint table of ``DjangoProjection``: one row per projection, in the projection's database.

Its columns mirror ``warmup.projection.Checkpoint`` field for field; the row is written in the same
transaction as the rows the projection's handlers wrote (that is what makes them exactly once).
"""

from __future__ import annotations

from django.db import models


class ProjectionCheckpoint(models.Model):
    """How far into the event log one projection is (see ``warmup.projection.Checkpoint``)."""

    name = models.CharField(max_length=200, primary_key=True)
    version = models.IntegerField()
    position = models.BigIntegerField(default=0)  # opaque: see warmup.log.base
    fingerprint = models.TextField(null=True, blank=True)
    log = models.TextField(null=True, blank=True)
    events_applied = models.BigIntegerField(default=0)
    events_rejected = models.BigIntegerField(default=0)
    last_event_id = models.TextField(null=True, blank=True)
    last_event_ts = models.TextField(null=True, blank=True)
    scope = models.TextField(null=True, blank=True)
    spec = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "warmup_django_checkpoint"
        verbose_name = "projection checkpoint"

    def __str__(self) -> str:
        return f"{self.name} v{self.version} at {self.position} ({self.events_applied} events)"
