"""``python manage.py warmup_project``: fold the event log into the project's projections (and the core tables).

It finds the projections in each installed app's ``warmup_projections.py`` (see
``warmup.contrib.django.discovery``) and hands them to warmup's projector
(``warmup.projector.command.run_project``), in this process, synchronously: the handlers' ORM calls
run outside any event loop, so ``DJANGO_ALLOW_ASYNC_UNSAFE`` is never needed.

Paths: ``--log`` / ``--db`` (warmup's own core database, where the log's validation state lives),
else the settings ``WARMUP_LOG`` / ``WARMUP_DB``, else the environment variables of the same names,
else warmup's defaults (``warmup-data/events.jsonl``, ``warmup-data/warmup.db``, relative to the
current directory, as for the ``warmup`` command).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from warmup.contrib.django.discovery import MODULE, discover_projections, select
from warmup.errors import WarmupError
from warmup.paths import DEFAULT_DB, DEFAULT_LOG


def default_path(setting: str, default: str) -> Path:
    """``settings.<setting>``, else ``$<setting>``, else warmup's ``default``."""
    value = getattr(settings, setting, None) or os.environ.get(setting) or default
    return Path(value)


class Command(BaseCommand):
    help = (
        f"Apply the event log's new events to the projections defined in the installed apps' {MODULE}.py "
        "(and to warmup's core tables). With --follow, keep applying them as the log grows, until "
        "Ctrl-C or SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--log", type=Path, help=f"The event log. Default: settings.WARMUP_LOG, "
                            f"$WARMUP_LOG, else {DEFAULT_LOG}.")
        parser.add_argument("--db", type=Path, help=f"warmup's own core SQLite database. Default: "
                            f"settings.WARMUP_DB, $WARMUP_DB, else {DEFAULT_DB}.")
        parser.add_argument("--follow", "-f", action="store_true",
                            help="Keep applying new events as they are appended (until SIGINT/SIGTERM).")
        parser.add_argument("--rebuild", action="store_true",
                            help="Clear the projections (their clear()) and rebuild them from the whole log.")
        parser.add_argument("--projection", action="append", default=[], metavar="NAME",
                            help="Only this projection (by its name); repeat for several. Default: all.")
        parser.add_argument("--strict", action="store_true",
                            help="Stop at the first invalid line instead of recording it and going on.")

    def handle(self, *args: Any, **options: Any) -> None:
        from warmup.projector.command import run_project

        log_path: Path = options["log"] or default_path("WARMUP_LOG", DEFAULT_LOG)
        db_path: Path = options["db"] or default_path("WARMUP_DB", DEFAULT_DB)
        try:
            classes = select(discover_projections(), options["projection"])
            if not classes:
                raise WarmupError(
                    f"no projections found: define a DjangoProjection subclass with a name in an installed "
                    f"app's {MODULE}.py"
                )
            code = run_project(
                log_path, db_path, follow=options["follow"], strict=options["strict"],
                quiet=options["verbosity"] == 0, projections=[cls() for cls in classes],
                rebuild=options["rebuild"],
            )
        except WarmupError as exc:
            raise CommandError(str(exc), returncode=exc.exit_code) from exc
        if code:
            raise CommandError("a projection failed (see above); the others are up to date", returncode=code)
