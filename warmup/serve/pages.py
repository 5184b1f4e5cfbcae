"""The dashboard's pages (placeholder: the pages are being written)."""

from __future__ import annotations

from starlette.routing import BaseRoute

PAGE_ROUTES: list[BaseRoute] = []
