"""Browser identity per account (issue 11, point 1) and ``base_url``: real Chromium against a local
page that echoes what it was sent and what the browser says about itself.

The servers here run in this pytest process, on 127.0.0.1:

- the echo site: ``.../id`` shows the request's headers (``#ua``, ``#lang``, ``#team``, ``#key``,
  ``#host``, ``#path``) and, from JavaScript, ``navigator.userAgent``, ``navigator.language``, the
  time zone, the window's size, the colour scheme and the geolocation; ``/private`` wants HTTP
  basic auth; ``/gate`` answers 503 until the test opens it;
- a forward proxy (plain HTTP, absolute-URI GETs) that asks for its own credentials (407), and
  carries requests for ``site.warmup.test``, a name only it resolves (to the echo site), counting them.
"""

from __future__ import annotations

import base64
import html
import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import Workdir, cli_env, warmup
from playwright.sync_api import sync_playwright
from serving import serving

from warmup.errors import UsageError
from warmup.runner.context import context_options
from warmup.tasks import load_task
from warmup.tasks.identity import device_descriptors, device_options

pytestmark = pytest.mark.browser

SITE_USER, SITE_PASSWORD = "gatekeeper", "Basic-Secret-7731"
PROXY_USER, PROXY_PASSWORD = "proxyuser", "Proxy-Secret-9137"
API_KEY = "ApiKey-Secret-5521"
PROXIED_HOST = "site.warmup.test"

ID_PAGE = """<!doctype html><html><head><meta charset='utf-8'>
<meta name='viewport' content='width=device-width, initial-scale=1'><title>Identity</title></head><body>
<p id='ua'>ua=[{ua}]</p><p id='lang'>lang=[{lang}]</p><p id='team'>team=[{team}]</p><p id='key'>key=[{key}]</p>
<p id='host'>host=[{host}]</p><p id='path'>path=[{path}]</p>
<p id='js-ua'></p><p id='js-lang'></p><p id='tz'></p><p id='size'></p><p id='scheme'></p><p id='geo'>geo=pending</p>
<script>
const set = (id, text) => {{ document.getElementById(id).textContent = text; }};
set('js-ua', 'js-ua=[' + navigator.userAgent + ']');
set('js-lang', 'js-lang=[' + navigator.language + ']');
set('tz', 'tz=[' + Intl.DateTimeFormat().resolvedOptions().timeZone + ']');
set('size', 'size=[' + innerWidth + 'x' + innerHeight + ']');
set('scheme', 'scheme=[' + (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light') + ']');
if (navigator.geolocation) navigator.geolocation.getCurrentPosition(
  p => set('geo', 'geo=[' + p.coords.latitude + ',' + p.coords.longitude + ']'),
  e => set('geo', 'geo=error ' + e.code));
</script></body></html>"""


class _SiteHandler(BaseHTTPRequestHandler):
    server: _EchoSite

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        path = urlsplit(self.path).path
        with self.server.lock:
            self.server.seen.append((path, {k.lower(): v for k, v in self.headers.items()}))
        if path.endswith("/id"):
            shown = {name: html.escape(self.headers.get(header, "")) for name, header in
                     (("ua", "User-Agent"), ("lang", "Accept-Language"), ("team", "X-Team"), ("key", "X-Api-Key"),
                      ("host", "Host"))}
            self._send(200, ID_PAGE.format(path=html.escape(path), **shown))
        elif path == "/private":
            expected = "Basic " + base64.b64encode(f"{SITE_USER}:{SITE_PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._send(401, "<p>who are you?</p>", {"WWW-Authenticate": 'Basic realm="warmup test"'})
            else:
                self._send(200, f"<title>Private</title><p id='who'>who=[{SITE_USER}]</p>")
        elif path == "/gate":
            if self.server.gate_open.is_set():
                self._send(200, "<title>Gate</title><p id='gate'>open</p>")
            else:
                self._send(503, "<p>closed</p>")
        else:
            self._send(404, "<p>not found</p>")


class _EchoSite(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SiteHandler)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.gate_open = threading.Event()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def headers_of(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [headers for seen_path, headers in self.seen if seen_path == path]


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _Proxy

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _refuse(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        url = urlsplit(self.path)
        expected = "Basic " + base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
        if self.headers.get("Proxy-Authorization") != expected:
            with self.server.lock:
                self.server.challenged += 1
            self._refuse(407, {"Proxy-Authenticate": 'Basic realm="warmup proxy"'})
            return
        if url.scheme != "http" or url.hostname != PROXIED_HOST:
            self._refuse(502)
            return
        forwarded = {k: v for k, v in self.headers.items()
                     if k.lower() not in ("proxy-authorization", "proxy-connection", "connection")}
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.site_port, timeout=30)
        try:
            upstream.request("GET", url.path + (f"?{url.query}" if url.query else ""), headers=forwarded)
            response = upstream.getresponse()
            body = response.read()
        finally:
            upstream.close()
        with self.server.lock:
            self.server.carried.append(url.path)
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, site_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.site_port = site_port
        self.lock = threading.Lock()
        self.carried: list[str] = []
        self.challenged = 0


@dataclass
class Echo:
    server: _EchoSite

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = _EchoSite()
    with serving(server):
        yield Echo(server)


@pytest.fixture
def proxy(echo: Echo) -> Iterator[_Proxy]:
    server = _Proxy(echo.server.port)
    with serving(server):
        yield server


def step_events(work: Workdir, account_id: str) -> list[dict]:
    return [e for e in work.events() if e["type"] == "step_finished" and e["account_id"] == account_id]


def final_status(work: Workdir, account_id: str) -> str:
    return [e for e in work.events() if e["type"] == "account_finished" and e["account_id"] == account_id][-1][
        "status"]


def expect(selector: str, text: str) -> str:
    return f'[[steps]]\nexpect_text = {{ selector = "{selector}", text = "{text}" }}\ntimeout_ms = 5000\n'


# -- each setting reaches the site ----------------------------------------------------------------
def test_each_identity_setting_reaches_the_site_and_accounts_override_the_task(echo: Echo, work: Workdir) -> None:
    (work.root / "more.csv").write_text(
        "id,user_agent,viewport.width,viewport.height,extra_http_headers.X-Team,want_ua,want_team\n"
        "csv1,CsvAgent/3.0,640,480,green,CsvAgent/3.0,green\n"
    )
    task = work.task(f"""
id = "identity"
concurrency = 2
accounts_file = "more.csv"
user_agent = "TaskAgent/1.0 (${{account.id}})"
locale = "de-CH"
timezone_id = "Pacific/Chatham"
viewport = {{ width = 777, height = 555 }}
color_scheme = "dark"
geolocation = {{ latitude = 12.5, longitude = -45.25, accuracy = 10 }}
extra_http_headers = {{ X-Team = "blue", X-Api-Key = "${{env.TEST_API_KEY}}" }}

[[accounts]]
id = "plain"
vars = {{ want_ua = "TaskAgent/1.0 (plain)", want_team = "blue" }}

[[accounts]]
id = "custom"
user_agent = "CustomAgent/2.0"
locale = "fr-FR"
timezone_id = "Asia/Tokyo"
color_scheme = "light"
extra_http_headers = {{ x-team = "red" }}
vars = {{ want_ua = "CustomAgent/2.0", want_team = "red" }}

[[steps]]
goto = "{echo.url}/id"
""" + expect("#ua", "ua=[${account.want_ua}]") + expect("#js-ua", "js-ua=[${account.want_ua}]")
        + expect("#team", "team=[${account.want_team}]") + expect("#key", "key=[${env.TEST_API_KEY}]"))
    result = warmup(*work.run_args(task, "--no-project"), env=cli_env(TEST_API_KEY=API_KEY))
    assert result.returncode == 0, result.stdout + result.stderr
    for account in ("plain", "custom", "csv1"):
        assert final_status(work, account) == "COMPLETED"
        assert all(e["ok"] for e in step_events(work, account)) and len(step_events(work, account)) == 5
    seen = {h["user-agent"]: h for h in echo.server.headers_of("/id")}
    assert set(seen) == {"TaskAgent/1.0 (plain)", "CustomAgent/2.0", "CsvAgent/3.0"}
    assert seen["TaskAgent/1.0 (plain)"]["accept-language"].startswith("de-CH")
    assert seen["CustomAgent/2.0"]["accept-language"].startswith("fr-FR")
    # headers merge by name: the account's x-team replaced the task's X-Team, its X-Api-Key stayed
    assert seen["CustomAgent/2.0"]["x-team"] == "red" and seen["CustomAgent/2.0"]["x-api-key"] == API_KEY
    assert API_KEY not in work.log.read_text() and API_KEY not in result.stdout + result.stderr


def test_javascript_sees_language_time_zone_size_colour_scheme_and_position(echo: Echo, work: Workdir) -> None:
    task = work.task(f"""
id = "js-identity"
concurrency = 2
locale = "de-CH"
timezone_id = "Pacific/Chatham"
viewport = {{ width = 777, height = 555 }}
color_scheme = "dark"
geolocation = {{ latitude = 12.5, longitude = -45.25 }}

[[accounts]]
id = "task-values"
vars = {{ lang = "de-CH", tz = "Pacific/Chatham", size = "777x555", scheme = "dark", geo = "12.5,-45.25" }}

[[accounts]]
id = "own-values"
locale = "fr-FR"
timezone_id = "${{account.zone}}"
viewport = {{ width = 640, height = 480 }}
color_scheme = "light"
geolocation = {{ latitude = -33.75, longitude = 151 }}
[accounts.vars]
zone = "Asia/Tokyo"
lang = "fr-FR"
tz = "Asia/Tokyo"
size = "640x480"
scheme = "light"
geo = "-33.75,151"

[[steps]]
goto = "{echo.url}/id"
""" + "".join(expect(f"#{name}", f"{name}=[${{account.{var}}}]") for name, var in
              (("js-lang", "lang"), ("tz", "tz"), ("size", "size"), ("scheme", "scheme"), ("geo", "geo"))))
    result = warmup(*work.run_args(task, "--no-project"))
    assert result.returncode == 0, result.stdout + result.stderr
    for account in ("task-values", "own-values"):
        assert [e["ok"] for e in step_events(work, account)] == [True] * 6, step_events(work, account)


def test_without_identity_the_page_shows_chromiums_defaults(echo: Echo, work: Workdir) -> None:
    """The checks above can fail: the same page, no identity keys, does not show those values."""
    task = work.task(f"""
id = "no-identity"
[[accounts]]
id = "bare"
[[steps]]
goto = "{echo.url}/id"
""" + expect("#size", "size=[777x555]").replace("5000", "1000"))
    result = warmup(*work.run_args(task, "--no-project"))
    assert result.returncode == 1
    events = step_events(work, "bare")
    assert [e["ok"] for e in events] == [True, False]
    assert "size=[1280x720]" in events[1]["error"]


def test_a_device_sets_user_agent_and_viewport_and_explicit_keys_win(echo: Echo, work: Workdir) -> None:
    pixel = device_descriptors()["Pixel 7"]
    size = f"{pixel['viewport']['width']}x{pixel['viewport']['height']}"
    task = work.task(f"""
id = "devices"
concurrency = 2
user_agent = "DesktopAgent/1.0"

[[accounts]]
id = "phone"
device = "Pixel 7"
vars = {{ size = "{size}" }}

[[accounts]]
id = "phone-own-ua"
device = "Pixel 7"
user_agent = "MyPhoneAgent/1.0"
vars = {{ size = "{size}" }}

[[steps]]
goto = "{echo.url}/id"
""" + expect("#size", "size=[${account.size}]"))
    result = warmup(*work.run_args(task, "--no-project"))
    assert result.returncode == 0, result.stdout + result.stderr
    agents = {h["user-agent"] for h in echo.server.headers_of("/id")}
    # the account's device replaces the task's user agent; the account's own user agent replaces the device's
    assert agents == {pixel["userAgent"], "MyPhoneAgent/1.0"} and "Pixel 7" in pixel["userAgent"]


def test_http_credentials_pass_basic_auth_and_stay_out_of_the_log(
    echo: Echo, work: Workdir, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = work.task(f"""
id = "basic-auth"
concurrency = 2

[[accounts]]
id = "with"
http_credentials = {{ username = "${{account.user}}", password = "${{env.SITE_PASSWORD}}" }}
vars = {{ user = "{SITE_USER}" }}

[[accounts]]
id = "without"
vars = {{ user = "{SITE_USER}" }}

[[steps]]
goto = "{echo.url}/private"
""" + expect("#who", "who=[${account.user}]"))
    result = warmup(*work.run_args(task, "--no-project"), env=cli_env(SITE_PASSWORD=SITE_PASSWORD))
    assert result.returncode == 1
    assert final_status(work, "with") == "COMPLETED"
    assert final_status(work, "without") == "FAILED"
    assert "HTTP 401" in step_events(work, "without")[0]["error"]
    # the form Chromium sent (user:password in base64) reaches neither the log nor the output
    monkeypatch.setenv("SITE_PASSWORD", SITE_PASSWORD)  # context_options reads ${env.*} now, as the runner does
    task_loaded = load_task(task)
    credentials = context_options(task_loaded, task_loaded.accounts[0], None)["http_credentials"]
    encoded = base64.b64encode(f"{credentials['username']}:{credentials['password']}".encode()).decode()
    assert f"Basic {encoded}" in {h.get("authorization") for h in echo.server.headers_of("/private")}
    for text in (work.log.read_text(), result.stdout, result.stderr):
        assert SITE_PASSWORD not in text and encoded not in text


# -- the proxy --------------------------------------------------------------------------------------
def test_a_proxy_carries_the_requests_with_its_credentials_and_no_secret_reaches_the_log(
    echo: Echo, proxy: _Proxy, work: Workdir
) -> None:
    task = work.task(f"""
id = "proxied"
extra_http_headers = {{ X-Api-Key = "${{env.TEST_API_KEY}}" }}
[proxy]
server = "http://127.0.0.1:{proxy.server_address[1]}"
username = "{PROXY_USER}"
password = "${{env.PROXY_PASSWORD}}"

[[accounts]]
id = "behind-proxy"

[[steps]]
goto = "http://{PROXIED_HOST}/id"
""" + expect("#host", f"host=[{PROXIED_HOST}]") + expect("#key", "key=[not-the-key]").replace(
        "timeout_ms = 5000", "timeout_ms = 500\noptional = true"))
    env = cli_env(PROXY_PASSWORD=PROXY_PASSWORD, TEST_API_KEY=API_KEY)
    result = warmup(*work.run_args(task, "--no-project"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "/id" in proxy.carried and proxy.challenged >= 1  # it asked for its credentials and got them
    events = step_events(work, "behind-proxy")
    assert [e["ok"] for e in events] == [True, True, False]
    # the page showed the secret header; the error quoting the page has it scrubbed
    assert "key=[***]" in events[2]["error"]
    outputs = [work.log.read_text(), result.stdout, result.stderr]
    outputs += [p.read_bytes().decode("latin-1") for p in work.artifacts.rglob("*") if p.is_file()]
    for text in outputs:
        assert PROXY_PASSWORD not in text and API_KEY not in text


def test_without_the_proxy_the_proxied_host_does_not_resolve(echo: Echo, proxy: _Proxy, work: Workdir) -> None:
    """The proxy test above can fail: the name exists only behind the proxy."""
    task = work.task(f"""
id = "unproxied"
[[accounts]]
id = "direct"
[[steps]]
goto = "http://{PROXIED_HOST}/id"
timeout_ms = 5000
""")
    result = warmup(*work.run_args(task, "--no-project"))
    assert result.returncode == 1
    assert proxy.carried == [] and "ERR_NAME_NOT_RESOLVED" in step_events(work, "direct")[0]["error"]


# -- resume and base_url ----------------------------------------------------------------------------
def test_identity_and_base_url_survive_a_resume(echo: Echo, work: Workdir) -> None:
    task = work.task(f"""
id = "resumable-identity"
base_url = "{echo.url}/"
user_agent = "TaskAgent/9"
extra_http_headers = {{ X-Team = "blue" }}

[[accounts]]
id = "r1"
user_agent = "ResumedAgent/1"
extra_http_headers = {{ X-Api-Key = "${{env.TEST_API_KEY}}" }}

[[steps]]
goto = "gate"
[[steps]]
goto = "id"
""" + expect("#ua", "ua=[ResumedAgent/1]") + expect("#team", "team=[blue]")
        + expect("#key", "key=[${env.TEST_API_KEY}]"))
    env = cli_env(TEST_API_KEY=API_KEY)
    first = warmup(*work.run_args(task, "--no-project"), env=env)
    assert first.returncode == 1 and "HTTP 503" in step_events(work, "r1")[0]["error"]
    run_id = next(e["run_id"] for e in work.events() if e["type"] == "run_started")
    task.unlink()  # the resume reads the recorded task only
    echo.server.gate_open.set()
    before = len(work.events())
    resumed = warmup("run", "--resume", run_id, "--log", str(work.log), "--artifacts", str(work.artifacts),
                     "--no-project", env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    new = work.events()[before:]
    assert [e["ok"] for e in new if e["type"] == "step_finished"] == [True] * 5
    assert [e["status"] for e in new if e["type"] == "account_finished"] == ["COMPLETED"]


def test_base_url_at_task_level_per_account_and_in_a_csv_column(echo: Echo, work: Workdir) -> None:
    port = echo.server.port
    (work.root / "accounts.csv").write_text(f"id,base_url,want\ncsv,http://localhost:{port}/sub/,localhost:{port}\n")
    task = work.task(f"""
id = "bases"
concurrency = 3
base_url = "{echo.url}/"
accounts_file = "accounts.csv"

[[accounts]]
id = "task-base"
vars = {{ want = "127.0.0.1:{port}" }}

[[accounts]]
id = "own-base"
base_url = "http://localhost:{port}/own/"
vars = {{ want = "localhost:{port}" }}

[[steps]]
goto = "id"
""" + expect("#host", "host=[${account.want}]"))
    result = warmup(*work.run_args(task, "--no-project"))
    assert result.returncode == 0, result.stdout + result.stderr
    paths = sorted(path for path, _ in echo.server.seen)
    assert paths == ["/id", "/own/id", "/sub/id"]


def test_a_bad_base_url_is_one_line_and_exit_2(work: Workdir) -> None:
    task = work.task('base_url = "example.com/app/"\n[[accounts]]\nid = "a"\n[[steps]]\ngoto = "feed"\n')
    result = warmup(*work.run_args(task, "--no-project"), env=cli_env(WARMUP_BROWSER="/nonexistent/chromium"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "base_url 'example.com/app/' is not an absolute URL" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not work.log.exists()


# -- checked at load --------------------------------------------------------------------------------
ACCOUNT = '[[accounts]]\nid = "a"\n'
STEP = '[[steps]]\ngoto = "http://127.0.0.1:1/"\n'
BAD = [
    ("unknown-key", 'proxy = { server = "http://p:1", user = "x" }\n' + ACCOUNT + STEP,
     "proxy: unknown field 'user' (known: server, username, password, bypass)"),
    ("bad-type", 'user_agent = 5\n' + ACCOUNT + STEP, "user_agent must be a string, not 5"),
    ("bad-table", 'viewport = "800x600"\n' + ACCOUNT + STEP, "viewport must be a table { width, height }"),
    ("device", 'device = "Pixel 77"\n' + ACCOUNT + STEP, "unknown device 'Pixel 77' (did you mean 'Pixel 7'?)"),
    ("color", 'color_scheme = "dim"\n' + ACCOUNT + STEP,
     "color_scheme must be one of 'light', 'dark', 'no-preference', not 'dim'"),
    ("viewport-size", 'viewport = { width = 0, height = 600 }\n' + ACCOUNT + STEP,
     "viewport.width must be from 1 to 10000 pixels, not 0"),
    ("viewport-missing", 'viewport = { width = 800 }\n' + ACCOUNT + STEP, "viewport needs 'height'"),
    ("viewport-float", 'viewport = { width = 800.5, height = 600 }\n' + ACCOUNT + STEP,
     "viewport.width must be an integer, not 800.5"),
    ("latitude", 'geolocation = { latitude = 91, longitude = 0 }\n' + ACCOUNT + STEP,
     "geolocation.latitude must be from -90 to 90, not 91"),
    ("longitude", 'geolocation = { latitude = 0, longitude = -181.5 }\n' + ACCOUNT + STEP,
     "geolocation.longitude must be from -180 to 180, not -181.5"),
    ("accuracy", 'geolocation = { latitude = 0, longitude = 0, accuracy = -1 }\n' + ACCOUNT + STEP,
     "geolocation.accuracy must be 0 or more, not -1"),
    ("time-zone", 'timezone_id = "Mars/Olympus_Mons"\n' + ACCOUNT + STEP,
     "unknown time zone 'Mars/Olympus_Mons'"),
    ("time-zone-path", 'timezone_id = "../../etc/passwd"\n' + ACCOUNT + STEP, "unknown time zone"),
    ("locale", 'locale = "english please"\n' + ACCOUNT + STEP, "'english please' is not a locale"),
    ("literal-proxy-password", 'proxy = { server = "http://p:1", username = "u", password = "hunter22" }\n'
     + ACCOUNT + STEP, "proxy.password is a credential: write it as ${env.NAME} or ${account.NAME}"),
    ("proxy-password-alone", 'proxy = { server = "http://p:1", password = "${env.P}" }\n' + ACCOUNT + STEP,
     "proxy: a password needs a username"),
    ("proxy-userinfo", 'proxy = { server = "http://u:pw@p:1" }\n' + ACCOUNT + STEP,
     "put the proxy's user and password in proxy.username and proxy.password"),
    ("proxy-scheme", 'proxy = { server = "ftp://p:1" }\n' + ACCOUNT + STEP, "has an unknown scheme"),
    ("literal-authorization", 'extra_http_headers = { Authorization = "Bearer abc" }\n' + ACCOUNT + STEP,
     "extra_http_headers.Authorization is a credential"),
    ("literal-token-header", 'extra_http_headers = { X-Auth-Token = "abc" }\n' + ACCOUNT + STEP,
     "extra_http_headers.X-Auth-Token is a credential"),
    ("literal-api-key-header", 'extra_http_headers = { X-Goog-Api-Key = "abc" }\n' + ACCOUNT + STEP,
     "extra_http_headers.X-Goog-Api-Key is a credential"),
    ("header-name", 'extra_http_headers = { "X Team" = "blue" }\n' + ACCOUNT + STEP, "'X Team' is not a header name"),
    ("header-twice", 'extra_http_headers = { X-Team = "a", x-team = "b" }\n' + ACCOUNT + STEP,
     "the header 'x-team' is set twice"),
    ("header-newline", 'extra_http_headers = { X-Team = "a\\nb" }\n' + ACCOUNT + STEP,
     "extra_http_headers.X-Team must be one line"),
    ("credential-not-secret", ACCOUNT + 'vars = { user = "u" }\n'
     'http_credentials = { username = "u", password = "${account.user}" }\n' + STEP,
     "accounts[0] (a): http_credentials.password is a credential"),
    ("credentials-missing", 'http_credentials = { username = "u" }\n' + ACCOUNT + STEP,
     "http_credentials needs 'password'"),
    ("account-device", ACCOUNT + 'device = "Pixle 7"\n' + STEP,
     "accounts[0] (a): device: unknown device 'Pixle 7' (did you mean 'Pixel 7'?)"),
    ("rendered-device", 'device = "${account.phone}"\n' + ACCOUNT + 'vars = { phone = "iPhone 99 Ultra" }\n' + STEP,
     "account 'a': device: unknown device 'iPhone 99 Ultra'"),
    ("undefined-ref", 'user_agent = "${account.agent}"\n' + ACCOUNT + STEP,
     "account 'a': user_agent: ${account.agent} is not defined for account 'a'"),
    ("unset-env", 'extra_http_headers = { X-Api-Key = "${env.NOT_SET_HERE}" }\n' + ACCOUNT + STEP,
     "extra_http_headers.X-Api-Key: ${env.NOT_SET_HERE}: environment variable NOT_SET_HERE is not set"),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_identity_is_refused_in_one_line_naming_the_key(tmp_path: Path, name: str, text: str,
                                                              message: str) -> None:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        load_task(path, env={})
    said = str(caught.value)
    assert message in said and str(path) in said and "\n" not in said, said


def test_a_secret_time_zone_that_is_wrong_is_named_by_its_template(tmp_path: Path) -> None:
    path = tmp_path / "tz.toml"
    path.write_text('timezone_id = "${env.ZONE}"\n' + ACCOUNT + STEP)
    with pytest.raises(UsageError) as caught:
        load_task(path, env={"ZONE": "Secret/Zone-Value"})
    assert "unknown time zone '${env.ZONE}' (as rendered)" in str(caught.value)
    assert "Secret/Zone-Value" not in str(caught.value)


@pytest.mark.parametrize("name", ["device", "literal-authorization", "viewport-size"])
def test_the_cli_refuses_a_bad_identity_with_exit_2_and_appends_nothing(work: Workdir, name: str) -> None:
    _, text, message = next(b for b in BAD if b[0] == name)
    task = work.task(text, f"{name}.toml")
    result = warmup(*work.run_args(task, "--no-project"), env=cli_env(WARMUP_BROWSER="/nonexistent/chromium"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not work.log.exists()


def test_secret_references_are_accepted_and_recorded_as_written(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text("""
proxy = { server = "socks5://proxy.example:1080", username = "u", password = "${env.PROXY_PW}", bypass = ".internal" }
extra_http_headers = { Authorization = "Bearer ${env.TOKEN}", X-Team = "blue" }
[[accounts]]
id = "a"
vars = { api_token = "literal-token-value" }
http_credentials = { username = "${account.id}", password = "${account.api_token}", origin = "https://example.com" }
extra_http_headers = { Cookie = "sid=${account.api_token}" }
[[steps]]
goto = "https://example.com/"
""")
    env = {"PROXY_PW": "pw-value-1", "TOKEN": "tok-value-2"}
    task = load_task(path, env=env)
    assert task.env_names == {"PROXY_PW", "TOKEN"}
    secrets = {value for _, value in task.secret_sources(env)}
    assert secrets == {"pw-value-1", "tok-value-2", "literal-token-value"}
    record = task.record()
    assert record["extra_http_headers"]["Authorization"] == "Bearer ${env.TOKEN}"
    assert record["accounts"][0]["http_credentials"]["password"] == "${account.api_token}"
    text = str(record)
    assert not any(secret in text for secret in secrets)


def test_identity_columns_of_csv_and_jsonl_accounts_files(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(
        "id,user_agent,device,proxy.server,viewport.width,viewport.height,geolocation.latitude,"
        "geolocation.longitude,extra_http_headers.X-Team,note\n"
        "c1,AgentC,,http://p:1,800,600,1.5,2,blue,hello\n"
        "c2,,Pixel 7,,,,,,,\n"
    )
    (tmp_path / "b.jsonl").write_text(
        '{"id": "j1", "locale": "fr-FR", "viewport": {"width": 500, "height": 400}, "note": "x"}\n'
    )
    for accounts_file in ("a.csv", "b.jsonl"):
        (tmp_path / "t.toml").write_text(f'accounts_file = "{accounts_file}"\n' + STEP)
        task = load_task(tmp_path / "t.toml", env={})
        found = {a.id: (a.identity, a.vars) for a in task.accounts}
        if accounts_file == "a.csv":
            assert found["c1"] == ({"user_agent": "AgentC", "proxy": {"server": "http://p:1"},
                                    "viewport": {"width": 800, "height": 600},
                                    "geolocation": {"latitude": 1.5, "longitude": 2.0},
                                    "extra_http_headers": {"X-Team": "blue"}}, {"note": "hello"})
            assert found["c2"] == ({"device": "Pixel 7"}, {"note": ""})
        else:
            assert found["j1"] == ({"locale": "fr-FR", "viewport": {"width": 500, "height": 400}}, {"note": "x"})


@pytest.mark.parametrize(("header", "row", "message"), [
    ("id,proxy", "a,http://p:1", "column 'proxy': write one column per field, such as 'proxy.server'"),
    ("id,viewport.width,viewport.height", "a,wide,600", "column 'viewport.width' must be a number, not 'wide'"),
    ("id,device", "a,Pixel 77", "a.csv: line 2 (a): device: unknown device 'Pixel 77'"),
    ("id,geolocation.latitude,geolocation.longitude", "a,nan,0", "geolocation.latitude must be a number, not nan"),
    ("id,proxy.server,proxy.username,proxy.password", "a,http://p:1,u,hunter22", "proxy.password is a credential"),
])
def test_bad_identity_columns_are_refused_in_one_line(tmp_path: Path, header: str, row: str, message: str) -> None:
    (tmp_path / "a.csv").write_text(f"{header}\n{row}\n")
    (tmp_path / "t.toml").write_text('accounts_file = "a.csv"\n' + STEP)
    with pytest.raises(UsageError) as caught:
        load_task(tmp_path / "t.toml", env={})
    assert message in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_device_descriptors_read_from_the_package_are_playwrights_own() -> None:
    """Read without starting Playwright, they match what a started Playwright gives (the oracle)."""
    with sync_playwright() as pw:
        theirs = pw.devices
    ours = device_descriptors()
    assert set(ours) == set(theirs) and len(ours) > 100
    for name in ours:
        expected = {k: v for k, v in theirs[name].items() if k != "default_browser_type"}
        assert device_options(name) == expected, name
