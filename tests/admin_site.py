"""A small admin-like site for the condition and extract tests, on 127.0.0.1 in the test process.

Like Django's admin, which the issue's users drove: a POST login form that either signs in (a
``sessionid`` cookie, a redirect to ``/admin/``) or answers again with an ``.errornote``, a
``/admin/`` page only for signed-in users, and a POST-only logout that clears the cookie.

- ``/admin/login/``: the form (``#id_username``, ``#id_password``, ``#login``); signed in: redirect;
- ``POST /admin/login/``: password ``good-pass`` signs in; any other shows ``.errornote``;
- ``/admin/``: ``#user-tools`` "Welcome, NAME." and a logout button ``#logout``; else redirect to login;
- ``POST /admin/logout/``: clears the cookie, ``#logged-out``;
- ``/late-error``: ``.errornote`` appears 300 ms after load (scripted), ``#never`` never does;
- ``/profile``: ``#me`` links to ``/users/42/`` and holds "Alice"; ``#hidden`` is not displayed;
  ``#leak`` shows the text ``good-pass`` (a page may show a secret);
- ``/users/ID/``: ``#uid`` "User ID";
- ``/echo?...``: ``#q`` shows the decoded query string.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_plus, urlsplit

from serving import HtmlHandler, serving

GOOD_PASSWORD = "good-pass"
REFUSED = "Please enter the correct username and password for a staff account."


CSRF = "tok-9d8e7f6a5b"  # the /profile page's form token


def page(title: str, body: str) -> bytes:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body>{body}</body></html>").encode()


def login_form(error: str = "") -> bytes:
    note = f"<p class='errornote'>{error}</p>" if error else ""
    return page("Log in", note + (
        "<form method='post' action='/admin/login/'><input id='id_username' name='username'>"
        "<input id='id_password' name='password' type='password'><button id='login' type='submit'>Log in</button>"
        "</form>"))


class _Handler(HtmlHandler):
    def _user(self) -> str | None:
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "sessionid" and value:
                return value
        return None

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        user = self._user()
        if url.path == "/admin/login/":
            if user:
                self._send(302, headers={"Location": "/admin/"})
            else:
                self._send(200, login_form())
        elif url.path == "/admin/":
            if not user:
                self._send(302, headers={"Location": "/admin/login/?next=/admin/"})
            else:
                self._send(200, page("Site administration", (
                    f"<div id='user-tools'>Welcome, {html.escape(user)}.</div>"
                    "<form method='post' action='/admin/logout/'><button id='logout'>Log out</button></form>")))
        elif url.path == "/late-error":
            self._send(200, page("Late", (
                "<p class='errornote' style='display:none'>Server is busy, try later.</p>"
                "<script>setTimeout(() => document.querySelector('.errornote').style.display = 'block', 300)"
                "</script>")))
        elif url.path == "/profile":
            self._send(200, page("Profile", (
                "<a id='me' href='/users/42/'> Alice </a><p id='hidden' style='display:none'>hidden</p>"
                f"<p id='leak'>{GOOD_PASSWORD}</p><input type='hidden' name='csrfmiddlewaretoken' value='{CSRF}'>")))
        elif url.path.startswith("/users/"):
            uid = html.escape(url.path.split("/")[2])
            self._send(200, page(f"User {uid}", f"<h1 id='uid'>User {uid}</h1>"))
        elif url.path == "/echo":
            self._send(200, page("Echo", f"<p id='q'>{html.escape(unquote_plus(url.query))}</p>"))
        else:
            self._send(404, page("Not found", "<p>not found</p>"))

    def do_POST(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        if url.path == "/admin/login/":
            username = form.get("username", [""])[0]
            if form.get("password", [""])[0] == GOOD_PASSWORD and username:
                cookie = f"sessionid={username}; Max-Age=3600; Path=/"
                self._send(302, headers={"Location": "/admin/", "Set-Cookie": cookie})
            else:
                self._send(200, login_form(REFUSED))
        elif url.path == "/admin/logout/":
            self._send(200, page("Logged out", "<p id='logged-out'>Logged out</p>"),
                       {"Set-Cookie": "sessionid=; Max-Age=0; Path=/"})
        else:
            self._send(404, page("Not found", "<p>not found</p>"))


@contextmanager
def admin_site() -> Iterator[str]:
    """The site's base URL (``http://127.0.0.1:PORT/``) while the block runs."""
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), _Handler)) as base:
        yield base + "/"
