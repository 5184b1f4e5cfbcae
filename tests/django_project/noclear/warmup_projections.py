"""A projection without clear(): it runs, but a rebuild is refused with a clear message."""

from warmup.contrib.django import DjangoProjection
from warmup.projection import on


class NoClear(DjangoProjection):
    name = "noclear"

    @on("run_finished")
    def finished(self, event, ctx) -> None:
        pass
