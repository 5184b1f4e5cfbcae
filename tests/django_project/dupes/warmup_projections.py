"""A projection whose name is already taken (by uploader's): the project must refuse to start."""

from warmup.contrib.django import DjangoProjection


class Again(DjangoProjection):
    name = "uploader_step_stats"
