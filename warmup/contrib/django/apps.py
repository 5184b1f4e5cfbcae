"""The Django app: add ``"warmup.contrib.django"`` to ``INSTALLED_APPS`` and run ``migrate``."""

from __future__ import annotations

from django.apps import AppConfig


class WarmupDjangoConfig(AppConfig):
    """Label ``warmup_django``: its one table holds each DjangoProjection's checkpoint."""

    name = "warmup.contrib.django"
    label = "warmup_django"
    verbose_name = "warmup projections"
    default_auto_field = "django.db.models.BigAutoField"
