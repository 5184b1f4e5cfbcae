"""The Starlette application: its routes, its middleware, and what runs beside the requests.

Beside the requests, on the same loop: the event hub (one thread follows the log and hands events
to the loop), a watcher that feeds every followed event to the launcher (which task is running),
and the scheduler. ``begin_stop`` (called at SIGTERM/SIGINT, before uvicorn waits for open
connections) ends every event stream and stops the scheduler, so a browser left on a live page
cannot hold the shutdown; the lifespan's end then waits for the runs in flight (``--grace``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from warmup.errors import WarmupError
from warmup.serve import pages
from warmup.serve.api import API_ROUTES, problem_response
from warmup.serve.artifacts import artifact
from warmup.serve.background import start_background
from warmup.serve.config import is_loopback
from warmup.serve.control import Problem
from warmup.serve.security import SESSION_COOKIE, SecurityMiddleware, read_form, session_value, token_ok
from warmup.serve.state import ServeState, serve_state
from warmup.serve.stream import events_endpoint

STATIC = Path(__file__).parent / "static"
LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>warmup: sign in</title>
<link rel="stylesheet" href="/static/style.css"></head><body><main class="login"><h1>warmup</h1>
<form method="post" action="/login"><label>Token <input type="password" name="token" autofocus
autocomplete="current-password"></label> <button type="submit">Sign in</button></form>{note}</main></body></html>
"""


async def login_form(request: Request) -> Response:
    return HTMLResponse(LOGIN_PAGE.format(note=""))


async def login(request: Request) -> Response:
    state = serve_state(request)
    token = state.config.token
    form = await read_form(request) or {}
    given = form.get("token")
    if token is None:
        return RedirectResponse("/", status_code=303)
    if not token_ok(given if isinstance(given, str) else None, token):
        return HTMLResponse(LOGIN_PAGE.format(note="<p class='error'>That is not this server's token.</p>"),
                            status_code=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SESSION_COOKIE, session_value(token), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def not_found(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("not found\n", status_code=404)


def build_app(state: ServeState, *, on_started: Callable[[], None] | None = None) -> Starlette:
    background: list[asyncio.Task[Any]] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        background.extend(await start_background(state))
        if on_started is not None:
            on_started()
        try:
            yield
        finally:
            begin_stop(state, background)
            await state.launcher.shutdown(state.config.grace_s)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)

    routes = [
        *pages.PAGE_ROUTES,
        *API_ROUTES,
        Route("/api/events", events_endpoint, methods=["GET"]),
        Route("/artifacts/{path:path}", artifact, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    config = state.config
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, token=config.token, loopback=is_loopback(config.host))],
        exception_handlers={Problem: problem_response, WarmupError: problem_response, 404: not_found},
        lifespan=lifespan,
    )
    app.state.serve = state
    app.state.hub = state.hub
    app.state.background = background
    return app


def begin_stop(state: ServeState, background: list[asyncio.Task[Any]] | None = None) -> None:
    """Start nothing more, end every event stream, stop the schedules (idempotent; on the loop)."""
    state.launcher.accepting = False
    if state.hub is not None:
        state.hub.stop()
    for task in background or []:  # (the launcher's watch ends with the hub anyway)
        task.cancel()
