"""``GET /api/events``: the log as a stream, Server-Sent Events or NDJSON, resumable by position.

Query: ``run`` (a run id: only its events, from its start), ``follow`` (``1``: go on with live
events; ``0``, the default: end after the history), ``after`` (a position: the events after it;
the ``Last-Event-ID`` header wins over it), ``tail`` (without ``run`` and ``after``: the last N
events first), ``types`` (a comma list of event types). docs/api.md ("Events") shows it with curl.

- **SSE** (the default): ``retry: 1000`` first, then each event as ``id: <position>`` and
  ``data: <the event as one line of JSON>``; a ``: keep-alive`` comment after ``KEEPALIVE_S``
  without events. **NDJSON** (``Accept: application/x-ndjson``): one ``{"position": P, "event":
  {...}}`` per line; a keep-alive is an empty line.
- The events come from the app's ``EventHub`` (``request.app.state.hub``), which reads the log in
  threads: this module never blocks the loop. A stream ends when the client disconnects (its
  generator is closed, its subscription dropped: no task left behind), when the hub stops, and when
  the client is too slow (it resumes with ``Last-Event-ID`` and loses nothing).
- Bad parameters get a 400 with one line of text naming the parameter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from warmup.events.envelope import EVENT_TYPES
from warmup.runs.origin import RUN_ID_SHAPE
from warmup.serve.hub import EventHub, Item

KEEPALIVE_S = 15.0
RETRY_MS = 1000
TAIL_MAX = 10_000
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class BadParameter(ValueError):
    """A query parameter or header that cannot be used: its message is the 400's one line."""


class EventsQuery:
    """The parsed, checked parameters of one ``/api/events`` request."""

    def __init__(self, request: Request) -> None:
        query = request.query_params
        self.run_id: str | None = _run(query.get("run"))
        self.follow: bool = _flag("follow", query.get("follow"))
        last_id = request.headers.get("last-event-id")
        if last_id is not None and last_id.strip():
            self.after: int | None = _position("Last-Event-ID", last_id)
        else:
            self.after = _position("after", query.get("after"))
        self.tail: int | None = _tail(query.get("tail"))
        self.types: frozenset[str] | None = _types(query.get("types"))
        self.ndjson: bool = NDJSON in request.headers.get("accept", "")


def _run(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not RUN_ID_SHAPE.match(value):
        raise BadParameter(f"run: {value[:40]!r} is not a run id (like 20261129T070000-1a2b3c)")
    return value


def _flag(name: str, value: str | None) -> bool:
    if value is None or value in ("", "0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise BadParameter(f"{name}: {value[:40]!r} is not 0 or 1")


def _position(name: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise BadParameter(f"{name}: {value[:40]!r} is not a log position (a whole number from an event's id)")
    return int(text)


def _tail(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 6 or int(text) > TAIL_MAX:
        raise BadParameter(f"tail: {value[:40]!r} is not a number of events from 0 to {TAIL_MAX}")
    return int(text)


def _types(value: str | None) -> frozenset[str] | None:
    if value is None or value.strip() == "":
        return None
    names = frozenset(part.strip() for part in value.split(",") if part.strip())
    unknown = sorted(names - EVENT_TYPES.keys())
    if unknown:
        raise BadParameter(f"types: {unknown[0][:40]!r} is not an event type ({', '.join(EVENT_TYPES)})")
    return names


def sse_chunk(items: list[Item]) -> bytes:
    """Items as SSE messages (``id`` and one ``data`` line each); a keep-alive comment if none."""
    if not items:
        return b": keep-alive\n\n"
    return b"".join(b"id: %d\ndata: %s\n\n" % (item.position, item.data) for item in items)


def ndjson_chunk(items: list[Item]) -> bytes:
    """Items as NDJSON lines ``{"position": P, "event": {...}}``; an empty line if none."""
    if not items:
        return b"\n"
    return b"".join(b'{"position":%d,"event":%s}\n' % (item.position, item.data) for item in items)


class EventStreamResponse(StreamingResponse):
    """A ``StreamingResponse`` that closes its generator however the response ends (a disconnect
    cancels the sending task: the generator's ``finally`` then runs here, not at garbage collection)."""

    body_iterator: Any

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()


async def _body(hub: EventHub, query: EventsQuery) -> AsyncIterator[bytes]:
    chunk = ndjson_chunk if query.ndjson else sse_chunk
    if not query.ndjson:
        yield b"retry: %d\n\n" % RETRY_MS
    batches = hub.batches(
        query.after, query.run_id, query.follow, types=query.types, tail=query.tail, idle_s=KEEPALIVE_S
    )
    try:
        async for items in batches:
            yield chunk(items)
    finally:
        await batches.aclose()


async def events_endpoint(request: Request) -> Response:
    """``GET /api/events``: see the module. The hub is ``request.app.state.hub``."""
    try:
        query = EventsQuery(request)
    except BadParameter as exc:
        return PlainTextResponse(f"{exc}\n", status_code=400)
    hub: EventHub = request.app.state.hub
    if hub.stopped:
        return PlainTextResponse("the server is shutting down\n", status_code=503)
    return EventStreamResponse(_body(hub, query), media_type=NDJSON if query.ndjson else SSE, headers=STREAM_HEADERS)


class StreamingServer(uvicorn.Server):
    """A ``uvicorn.Server`` that stops ``hub`` as soon as it starts shutting down.

    uvicorn waits for every open response to end before it runs the lifespan shutdown, and an
    event stream with ``follow=1`` never ends on its own: stopping the hub first ends them all.
    """

    def __init__(self, config: uvicorn.Config, hub: EventHub) -> None:
        super().__init__(config)
        self.hub = hub

    async def shutdown(self, sockets: Any = None) -> None:
        self.hub.stop()
        await super().shutdown(sockets)
