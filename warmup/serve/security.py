"""Who may use the server, and what a page may do: the token, the CSRF check, the headers.

Invariants, each enforced here and nowhere else:

- **Loopback needs no token; anything else does** (``ServeConfig.check`` refuses to start without
  one). With a token every request but ``/login`` and ``/static/`` carries it: ``Authorization:
  Bearer TOKEN`` (API clients) or the login cookie that ``POST /login`` sets (an HMAC of the token,
  so the token itself never sits in a cookie and a restart keeps browsers signed in). Otherwise 401.
- **Host header**: on loopback, only ``127.0.0.1``/``localhost``/``[::1]`` are served (a DNS rebinding
  page cannot talk to the server through another name).
- **CSRF**: a dashboard form carries ``csrf``, an HMAC (keyed by this server's secret) of the
  ``warmup_csrf`` cookie, which a page of another site can neither read nor forge; a POST without it
  is 403. An API POST must be JSON (a cross-site form cannot send that without a CORS preflight, which
  is never granted), carry the Bearer token or ``X-CSRF-Token`` (``api_write_refusal``, for every
  API POST), and a browser's ``Sec-Fetch-Site: cross-site`` is 403.
- **Headers** on every response: a strict Content-Security-Policy (scripts from ``/static`` only, no
  inline script; inline styles are allowed for the timeline's bar positions; styles from
  ``/static``), ``nosniff``, no referrer, no framing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.requests import Request, cookie_parser
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "warmup_session"
CSRF_COOKIE = "warmup_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
MAX_FORM_BYTES = 16 << 10  # the dashboard's forms are a few short fields
OPEN_PATHS = ("/login", "/static/")  # reachable without the token
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


def session_value(token: str) -> str:
    """The login cookie's value for ``token``: derived from it, never the token itself."""
    return hmac.new(token.encode(), b"warmup-session-v1", hashlib.sha256).hexdigest()


def token_ok(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def csrf_token(request: Request) -> str:
    """The value a form of this page must send back as ``csrf`` (or an API call as X-CSRF-Token)."""
    secret: bytes = request.app.state.serve.csrf_secret
    cookie = request.cookies.get(CSRF_COOKIE) or request.scope.get("warmup_csrf_cookie", "")
    return hmac.new(secret, cookie.encode(), hashlib.sha256).hexdigest()


def csrf_ok(request: Request, given: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not given:
        return False
    return hmac.compare_digest(given.encode(), csrf_token(request).encode())


async def read_form(request: Request) -> dict[str, str] | None:
    """The POSTed ``application/x-www-form-urlencoded`` form (what the dashboard's forms send), or None
    if it is over ``MAX_FORM_BYTES`` or not a form. Parsed here, without python-multipart: a dashboard
    form never uploads a file."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM_BYTES:
            return None
    try:
        return dict(parse_qsl(raw.decode("utf-8"), max_num_fields=20))
    except (UnicodeDecodeError, ValueError):
        return None


async def require_form_csrf(request: Request) -> dict[str, str] | None:
    """The POSTed form if its ``csrf`` field is right, else None (the handler answers 403)."""
    form = await read_form(request)
    return form if form is not None and csrf_ok(request, form.get(CSRF_FIELD)) else None


def api_write_refusal(request: Request) -> tuple[int, str] | None:
    """Why an API POST may not go on (status, one line), or None. It must carry the Authorization
    header or a valid X-CSRF-Token, or be JSON: none of these can come from another site's form."""
    if "authorization" in request.headers or csrf_ok(request, request.headers.get(CSRF_HEADER)):
        return None
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return 415, "send Content-Type: application/json (an empty body {} is fine)"
    return None


def _host_of(headers: Headers) -> str:
    host = headers.get("host", "")
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host


class SecurityMiddleware:
    """Pure ASGI (it does not buffer a streaming response): the checks and headers above."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback: bool) -> None:
        self.app = app
        self.token = token
        self.session = session_value(token) if token else None
        self.loopback = loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path: str = scope["path"]
        refusal = self._refusal(scope, headers, path)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        new_cookie = None
        if CSRF_COOKIE not in _cookies(headers):
            new_cookie = secrets.token_urlsafe(24)
            scope["warmup_csrf_cookie"] = new_cookie

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(SECURITY_HEADERS)
                if new_cookie is not None:
                    extra.append((b"set-cookie",
                                  f"{CSRF_COOKIE}={new_cookie}; Path=/; HttpOnly; SameSite=Strict".encode()))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope, headers: Headers, path: str) -> Any:
        if self.loopback and _host_of(headers) not in LOOPBACK_NAMES:
            return PlainTextResponse("this server answers to 127.0.0.1 or localhost only\n", status_code=400)
        if self.token is not None and not path.startswith(OPEN_PATHS):
            auth = headers.get("authorization", "")
            bearer = auth[7:] if auth.lower().startswith("bearer ") else None
            cookie = _cookies(headers).get(SESSION_COOKIE)
            if not (token_ok(bearer, self.token) or (cookie and self.session
                                                      and hmac.compare_digest(cookie, self.session))):
                return _unauthorized(path)
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and headers.get("sec-fetch-site") == "cross-site":
            return PlainTextResponse("cross-site request refused\n", status_code=403)
        return None


def _cookies(headers: Headers) -> dict[str, str]:
    """The request's cookies, read as ``request.cookies`` reads them (Starlette's lenient parser: a
    neighbour's cookie with a quote or a space in it does not hide ours)."""
    return cookie_parser(headers.get("cookie", ""))


def _unauthorized(path: str) -> Any:
    if path.startswith("/api/"):
        return JSONResponse({"error": "this server needs its token: send Authorization: Bearer TOKEN"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return PlainTextResponse("this server needs its token: sign in at /login\n", status_code=401,
                             headers={"WWW-Authenticate": "Bearer"})
