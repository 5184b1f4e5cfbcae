"""A projection whose handler raises on the second run: it stops alone; the others go on."""

from warmup.contrib.django import DjangoProjection
from warmup.projection import on


class Failing(DjangoProjection):
    name = "failing"

    @on("run_started")
    def started(self, event, ctx) -> None:
        if event.run_id == "run0002":
            raise ValueError("no room for run0002")

    def clear(self) -> None:
        pass
