"""Playwright traces (issue 11 point 8): kept per attempt by mode, and never with a secret in them.

End to end: real Chromium, a local site on 127.0.0.1 that receives a password typed by ``fill``
and sent by the page every way a site sends one (form POST, JSON body, query string, a basic-auth
``Authorization`` header, a custom header) and echoes it back (HTML, JSON). The archive is then
scanned byte by byte for every form of the secret, and opened in ``playwright show-trace``. Unit
tests feed the redactor and the checker hand-made archives.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, quote_plus, unquote, urlsplit

import orjson
import pytest
from conftest import Workdir, cli_env, warmup
from playwright.sync_api import sync_playwright
from serving import serving

from warmup.browser import find_browser, launch_args
from warmup.runner.redact import base64_cores, find_leak, redact_archive
from warmup.runner.trace import keep_without_secrets

SECRET = 'S3cr&t pä55"<wörd>/+%x'  # every character class that an escaping changes
ASCII_SECRET = "hunter2-Correct-Horse"

FORM = """<!doctype html><html><head><meta charset='utf-8'><title>Form</title></head><body>
<form id='f' method='post' action='/posted'>
<input id='user' name='user' value='alice'><input id='pass' name='pass' type='password'>
<input id='note' name='note'></form>
<button id='send' onclick='send()'>send</button><p id='out'></p>
<script>
async function send() {
  const v = document.getElementById('pass').value;
  const r = await fetch('/api?token=' + encodeURIComponent(v), {
    method: 'POST',
    headers: {'Authorization': 'Basic ' + btoa('alice:' + v), 'X-Token': encodeURIComponent(v),
              'Content-Type': 'application/json'},
    body: JSON.stringify({password: v}),
  });
  document.getElementById('out').textContent = 'sent: ' + (await r.json()).got;
  document.getElementById('f').submit();
}
</script></body></html>"""

LEAKY = """<!doctype html><html><head><meta charset='utf-8'><title>Leaky</title></head><body>
<input id='pass' type='password'><button id='send' onclick='send()'>send</button><p id='out'></p>
<script>
async function send() {
  const r = await fetch('/utf16', {method: 'POST', body: document.getElementById('pass').value});
  document.getElementById('out').textContent = 'answered ' + r.status;
}
</script></body></html>"""


class _Handler(BaseHTTPRequestHandler):
    server: _Site

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, body: bytes, content_type: str = "text/html; charset=utf-8") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path == "/form":
            self._send(FORM.encode())
        elif path == "/leaky":
            self._send(LEAKY.encode())
        else:
            self._send(b"<p id='ok'>ok</p>")

    def do_POST(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        received = self.server.received
        if url.path == "/api":
            received["query"] = parse_qs(url.query)["token"][0]
            received["json"] = json.loads(body)["password"]
            received["authorization"] = self.headers["Authorization"]
            received["x-token"] = unquote(self.headers["X-Token"])
            self._send(json.dumps({"got": received["json"]}).encode(), "application/json")  # \\u escapes
        elif url.path == "/posted":
            received["form"] = parse_qs(body.decode())["pass"][0]
            self._send(f"<p id='done'>thanks, {html.escape(received['form'])}</p>".encode())
        elif url.path == "/utf16":  # a binary answer holding the value in UTF-16: a form the redactor leaves
            self._send(body.decode().encode("utf-16-le"), "application/octet-stream")


class _Site(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: dict[str, str] = {}


@pytest.fixture
def form_site() -> Iterator[_Site]:
    server = _Site()
    with serving(server):
        yield server


def base(server: _Site) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def forms_of(secret: str) -> dict[str, bytes]:
    """Every form a trace could hold ``secret`` in, written here independently of warmup's code."""
    forms = {
        "raw": secret.encode(),
        "json": json.dumps(secret)[1:-1].encode(),
        "json-utf8": json.dumps(secret, ensure_ascii=False)[1:-1].encode(),
        "html": html.escape(secret).encode(),
        "html-noquote": html.escape(secret, quote=False).encode(),
        "quote": quote(secret, safe="").encode(),
        "quote-lower": quote(secret, safe="").lower().encode(),
        "quote-plus": quote_plus(secret).encode(),
        "quote-uri": quote(secret, safe="!$&'()*+,;=:@/?#[]~").encode(),  # what encodeURI leaves
        "basic": base64.b64encode(f"alice:{secret}".encode("latin-1", "replace")).decode().encode(),
        "base64": base64.b64encode(secret.encode()).decode().encode(),
    }
    try:
        forms["latin-1"] = secret.encode("latin-1")
        forms["base64-latin-1"] = base64.b64encode(secret.encode("latin-1"))
    except UnicodeEncodeError:
        pass
    return forms


def leaks(data: bytes, secret: str) -> list[str]:
    """``entry: form`` for each form of ``secret`` found in an archive (or in plain bytes)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return [f"-: {name}" for name, form in forms_of(secret).items() if form in data]
    return [f"{info.filename}: {name}" for info in archive.infolist() for name, form in forms_of(secret).items()
            if form in archive.read(info)]


def trace_events(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "artifact_saved" and e["kind"] == "trace"]


def form_task(work: Workdir, server: _Site, value: str, extra: str = "") -> Path:
    return work.task(f"""
id = "traced"
{extra}
[[accounts]]
id = "alice"

[[steps]]
goto = "{base(server)}/form"
[[steps]]
fill = "#pass"
value = "{value}"
[[steps]]
fill = "#note"
value = "{value}"
[[steps]]
click = "#send"
[[steps]]
wait_for = "#done"
[[steps]]
wait_for = "#never"
timeout_ms = 300
""")


def test_a_failing_attempt_keeps_a_trace_without_any_form_of_the_secret(form_site: _Site, work: Workdir) -> None:
    task = form_task(work, form_site, "${env.TRACE_PW}")
    result = warmup(*work.run_args(task, "--no-project"), env=cli_env(TRACE_PW=SECRET))
    assert result.returncode == 1, result.stderr
    # the site did get the secret every way (else there would be nothing to redact)
    assert form_site.received == {
        "query": SECRET, "json": SECRET, "x-token": SECRET, "form": SECRET,
        "authorization": "Basic " + base64.b64encode(f"alice:{SECRET}".encode("latin-1")).decode(),
    }
    events = work.events()
    [saved] = trace_events(events)
    assert saved["path"].endswith("/alice/trace-1.zip") and saved["attempt"] == 1
    data = (work.artifacts / saved["path"]).read_bytes()
    assert saved["bytes"] == len(data) > 1000 and saved["sha256"] == hashlib.sha256(data).hexdigest()
    assert leaks(data, SECRET) == []
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    names = archive.namelist()
    assert "trace.trace" in names and "trace.network" in names  # what `playwright show-trace` reads
    assert not [n for n in names if n.endswith((".jpeg", ".png"))]  # screencast frames dropped: a secret task
    for name in ("trace.trace", "trace.network"):
        lines = [orjson.loads(line) for line in archive.read(name).splitlines() if line.strip()]  # still JSON lines
        assert lines
    calls = [orjson.loads(line) for line in archive.read("trace.trace").splitlines() if b'"fill"' in line]
    assert [c["params"]["value"] for c in calls if c.get("type") == "before"] == ["***", "***"]  # redacted, kept
    for name in names:  # every resource a trace file names is in the archive (renamed ones included)
        if name.startswith("resources/"):
            assert name.encode() in archive.read("trace.network") or name[10:].encode() in archive.read("trace.trace")
    assert leaks(work.log.read_bytes(), SECRET) == []
    assert leaks((result.stdout + result.stderr).encode(), SECRET) == []
    assert "trace_dropped" not in [e for e in events if e["type"] == "account_finished"][-1]

    actions = actions_in_trace_viewer(work.artifacts / saved["path"])  # the redacted trace still opens
    assert actions.count('Fill "***"') == 2 and 'Click' in actions and 'Wait for' in actions, actions


def actions_in_trace_viewer(trace: Path) -> str:
    """The action list that ``playwright show-trace`` shows for ``trace`` (served, read in Chromium)."""
    viewer = subprocess.Popen(
        [sys.executable, "-m", "playwright", "show-trace", "--host", "127.0.0.1", "--port", "0", str(trace)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        assert viewer.stdout is not None
        line = viewer.stdout.readline().strip() or viewer.stdout.readline()  # "Listening on http://127.0.0.1:PORT"
        assert line.startswith("Listening on http://127.0.0.1:"), line
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=find_browser(headless=True), args=launch_args())
            try:
                page = browser.new_page()
                page.goto(line.split()[-1])
                actions = page.locator(".action-title-method")
                actions.filter(has_text="Wait for").first.wait_for(timeout=30_000)
                return "\n".join(actions.all_inner_texts())
            finally:
                browser.close()
    finally:
        os.killpg(viewer.pid, signal.SIGTERM)  # the viewer's own session: python and its node driver
        viewer.wait(timeout=30)


def test_without_redaction_the_same_trace_holds_the_secret(form_site: _Site, work: Workdir) -> None:
    """The control of the test above: the value from plain [vars] is no secret, so the trace keeps it."""
    task = form_task(work, form_site, "${vars.plain}", extra=f"[vars]\nplain = {json.dumps(SECRET)}")
    result = warmup(*work.run_args(task, "--no-project"))
    assert result.returncode == 1, result.stderr
    [saved] = trace_events(work.events())
    found = leaks((work.artifacts / saved["path"]).read_bytes(), SECRET)
    entries = {f.split(":")[0] for f in found}
    assert "trace.trace" in entries and "trace.network" in entries, found  # the fill, the request bodies
    assert any(e.startswith("resources/") for e in entries), found  # the bodies sent and echoed
    snapshots = [line for line in zipfile.ZipFile(work.artifacts / saved["path"]).read("trace.trace").splitlines()
                 if b'"frame-snapshot"' in line]
    assert [s for s in snapshots if forms_of(SECRET)["json-utf8"] in s]  # the input's value, in the DOM snapshots


def test_on_failure_keeps_failed_attempts_only_and_on_keeps_every_one(site: str, work: Workdir) -> None:
    task = work.task(f"""
id = "modes"
retries = 1
[[accounts]]
id = "good"
vars = {{ sel = "#feed" }}
[[accounts]]
id = "bad"
vars = {{ sel = "#missing" }}

[[steps]]
goto = "{site}/feed"
[[steps]]
wait_for = "${{account.sel}}"
timeout_ms = 300
""")
    result = warmup(*work.run_args(task, "--no-project"))
    assert result.returncode == 1, result.stderr
    saved = {e["path"].split("/", 1)[1] for e in trace_events(work.events())}
    assert saved == {"bad/trace-1.zip", "bad/trace-2.zip"}  # each failed attempt; none for the success
    run_id = work.events()[0]["run_id"]
    assert sorted(p.name for p in (work.artifacts / run_id / "bad").glob("trace-*")) == ["trace-1.zip",
                                                                                          "trace-2.zip"]
    assert not list((work.artifacts / run_id).glob("good/trace-*"))
    assert not [n for n in zipfile.ZipFile(work.artifacts / run_id / "bad" / "trace-1.zip").namelist()
                if n.endswith(".jpeg")]  # on-failure: no screencast (its cost)

    work.task(work.root.joinpath("task.toml").read_text().replace('retries = 1', 'trace = "on"'))
    result = warmup(*work.run_args(task, "--no-project"))
    saved = {e["path"] for e in trace_events(work.events()) if e["run_id"] != run_id}
    assert {p.split("/", 1)[1] for p in saved} == {"good/trace-1.zip", "bad/trace-1.zip"}
    for path in saved:  # "on" in a task without secrets: the screencast too, kept as Playwright wrote it
        assert [n for n in zipfile.ZipFile(work.artifacts / path).namelist() if n.endswith(".jpeg")]


def test_trace_off_records_none(site: str, work: Workdir) -> None:
    task = work.task(f"""
id = "off"
trace = "off"
[[accounts]]
id = "a"
[[steps]]
goto = "{site}/feed"
[[steps]]
wait_for = "#missing"
timeout_ms = 300
""")
    result = warmup(*work.run_args(task, "--no-project"))
    assert result.returncode == 1, result.stderr
    assert trace_events(work.events()) == []
    assert not list(work.artifacts.glob("*/a/trace-*"))
    assert list(work.artifacts.glob("*/a/failure-1.png"))  # (the failure itself was recorded)


def test_a_secret_still_found_after_redaction_drops_the_trace_and_says_why(form_site: _Site, work: Workdir) -> None:
    task = work.task(f"""
id = "leaky"
[[accounts]]
id = "alice"
[[steps]]
goto = "{base(form_site)}/leaky"
[[steps]]
fill = "#pass"
value = "${{env.TRACE_PW}}"
[[steps]]
click = "#send"
[[steps]]
wait_for = "#out"
[[steps]]
wait_for = "#never"
timeout_ms = 300
""")
    result = warmup(*work.run_args(task, "--no-project"), env=cli_env(TRACE_PW=ASCII_SECRET))
    assert result.returncode == 1, result.stderr
    events = work.events()
    assert trace_events(events) == []
    assert not list(work.artifacts.glob("*/alice/trace-*"))
    finished = [e for e in events if e["type"] == "account_finished"][-1]
    assert finished["trace_dropped"].startswith("trace not kept: its entry resources/")
    assert "still holds a secret after redaction" in finished["trace_dropped"]
    assert "alice: trace not kept" in result.stderr
    assert leaks(work.log.read_bytes(), ASCII_SECRET) == []


# -- the redactor and the checker on hand-made archives ----------------------------------------
def archive(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return out.getvalue()


def test_every_form_is_redacted_and_json_stays_valid() -> None:
    secret = 'ab"c\\d/é&<z>'  # a quote and a trailing-escape-prone backslash inside JSON
    user_pass = base64.b64encode(f"someone:{secret}".encode()).decode()
    record = {"method": "fill", "params": {"value": secret}, "headers": [
        {"name": "Authorization", "value": f"Basic {user_pass}"},
        {"name": secret, "value": "a name"}], "n": 1, "by_key": {secret: "a key"}}
    lines = b"\n".join(orjson.dumps(r) for r in (record, {"url": "https://x/?q=" + quote_plus(secret)})) + b"\n"
    resource = "resources/" + hashlib.sha1(secret.encode()).hexdigest() + ".html"
    raw = archive({
        "trace.trace": lines,
        "trace.network": orjson.dumps({"_file": resource, "text": html.escape(secret)}) + b"\n",
        resource: f"<p title='{html.escape(secret)}'>{secret}</p>".encode(),
        "resources/frame.jpeg": b"\xff\xd8\xff" + secret.encode(),
        "blob.txt": b"prefix" + base64.b64encode(b"xy" + secret.encode()) + b"suffix",
    })
    assert find_leak(raw, [secret]) is not None
    clean, dropped = redact_archive(raw, [secret])
    assert dropped == ["resources/frame.jpeg"]
    assert find_leak(clean, [secret]) is None
    assert leaks(clean, secret) == []
    z = zipfile.ZipFile(io.BytesIO(clean))
    first, second = (orjson.loads(line) for line in z.read("trace.trace").splitlines())
    assert first["params"]["value"] == "***" and first["n"] == 1
    assert first["headers"][0]["value"] == "Basic ***" and first["headers"][1]["name"] == "***"
    assert first["by_key"] == {"***": "a key"}
    assert second["url"] == "https://x/?q=***"
    network = orjson.loads(z.read("trace.network"))
    assert network["_file"] != resource and network["_file"] in z.namelist()  # renamed after its new content
    assert hashlib.sha1(z.read(network["_file"])).hexdigest() in network["_file"]
    assert z.read(network["_file"]) == b"<p title='***'>***</p>"


def test_without_secrets_the_archive_is_kept_as_written() -> None:
    raw = archive({"trace.trace": b'{"a":1}\n', "page.jpeg": b"\xff\xd8\xff\x00"})
    assert keep_without_secrets(raw, []).data == raw


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1", "utf-16-le", "utf-16-be"])
def test_the_checker_finds_the_secret_in_any_entry(encoding: str) -> None:
    secret = "pässwörd-1234"
    raw = archive({"trace.trace": b"{}\n", "resources/x.bin": b"\x00\xff" + secret.encode(encoding)})
    assert find_leak(raw, [secret]) == "its entry resources/x.bin still holds a secret after redaction"
    clean, dropped = redact_archive(raw, [secret])
    assert dropped == ["resources/x.bin"] and find_leak(clean, [secret]) is None  # binary: dropped


def test_a_form_the_redactor_leaves_stops_the_trace() -> None:
    secret = "hunter2-Correct-Horse"
    # UTF-16 of ASCII is valid UTF-8 (letters and NULs): redacted as text, where the secret is not found
    raw = archive({"trace.trace": b"{}\n", "resources/a.txt": secret.encode("utf-16-le")})
    outcome = keep_without_secrets(raw, [secret])
    assert outcome.data is None
    assert outcome.note == "trace not kept: its entry resources/a.txt still holds a secret after redaction"


def test_base64_cores_match_the_secret_at_any_alignment() -> None:
    secret = b"open sesame!"
    for prefix in (b"", b"u", b"us", b"use:"):
        encoded = base64.b64encode(prefix + secret + b"tail").decode()
        assert any(core in encoded for core in base64_cores(secret)), prefix


def test_a_broken_archive_is_not_kept() -> None:
    outcome = keep_without_secrets(b"not a zip", ["a secret value"])
    assert outcome.data is None and "not a readable zip" in (outcome.note or "")


def test_the_report_links_each_trace_and_says_how_to_open_it(site: str, work: Workdir) -> None:
    task = work.task(f"""
id = "reported"
[[accounts]]
id = "alice"
[[steps]]
goto = "{site}/feed"
[[steps]]
wait_for = "#missing"
timeout_ms = 300
""")
    result = warmup(*work.run_args(task))  # projected as it runs
    assert result.returncode == 1, result.stderr
    [saved] = trace_events(work.events())
    out = work.root / "report.html"
    report = warmup("report", "last", "--log", str(work.log), "--db", str(work.db), "--artifacts",
                    str(work.artifacts), "-o", str(out))
    assert report.returncode == 0, report.stderr
    assert "1 trace(s) linked" in report.stdout and "python -m playwright show-trace" in report.stdout
    text = out.read_text()
    file = (work.artifacts / saved["path"]).resolve()
    link = f"<a class='trace' href='{html.escape(file.as_uri(), quote=True)}'>{html.escape(saved['path'])}</a>"
    assert text.count(link) == 2  # beside the failure, and in the list of traces
    assert f"<code class='cmd'>python -m playwright show-trace {html.escape(str(file))}</code>" in text
    assert "<h2>Traces (1)</h2>" in text and "<li data-account='alice'>alice, attempt 1: " in text
    assert "<script" not in text

    file.unlink()  # a trace gone since: a note, no link
    warmup("report", "last", "--log", str(work.log), "--db", str(work.db), "--artifacts", str(work.artifacts),
           "-o", str(out))
    text = out.read_text()
    assert "<a class='trace'" not in text and f"missing: no file {html.escape(str(file))}" in text


def test_a_json_lines_entry_with_a_line_cut_short_is_redacted_line_by_line() -> None:
    secret = "cut-short-secret"
    lines = [orjson.dumps({"value": secret, "big": 1}), b'{"value": "' + secret.encode(),
             orjson.dumps({"n": 12})]
    clean, _ = redact_archive(archive({"trace.trace": b"\n".join(lines) + b"\n"}), [secret])
    first, cut, last, end = zipfile.ZipFile(io.BytesIO(clean)).read("trace.trace").split(b"\n")
    assert orjson.loads(first) == {"value": "***", "big": 1} and cut == b'{"value": "***'
    assert orjson.loads(last) == {"n": 12} and end == b""


def test_a_value_too_deep_to_walk_is_redacted_as_text() -> None:
    deep = b"[" * 1020 + b"\"a secret value\"" + b"]" * 1020  # orjson reads it (up to 1024); too deep to walk
    outcome = keep_without_secrets(archive({"trace.stacks": deep}), ["a secret value"])
    assert outcome.note is None and outcome.data is not None
    with zipfile.ZipFile(io.BytesIO(outcome.data)) as kept:
        assert kept.read("trace.stacks") == b"[" * 1020 + b'"***"' + b"]" * 1020


def test_the_cookies_a_trace_holds_are_redacted_though_no_secret_is_known() -> None:
    """Rule 5: cookies never reach a trace. Their values come from the trace itself."""
    network = orjson.dumps({"snapshot": {
        "request": {"headers": [{"name": "Cookie", "value": "sessionid=sess-8f7e6d; theme=dk"}],
                    "cookies": [{"name": "sessionid", "value": "sess-8f7e6d"}]},
        "response": {"headers": [{"name": "Set-Cookie", "value": "csrftoken=csrf-1a2b3c4d; Path=/; HttpOnly"}],
                     "cookies": []},
    }}) + b"\n"
    options = orjson.dumps({"type": "context-options", "options": {"storageState": {
        "cookies": [{"name": "remember", "value": "keep-me-5x5x", "domain": "127.0.0.1", "path": "/"}]}}}) + b"\n"
    page = b"<p>session sess-8f7e6d, csrf csrf-1a2b3c4d, remember keep-me-5x5x</p>"
    raw = archive({"trace.trace": options, "trace.network": network, "resources/page.html": page})
    outcome = keep_without_secrets(raw, [])
    assert outcome.data is not None and outcome.note is None
    with zipfile.ZipFile(io.BytesIO(outcome.data)) as kept:
        everything = b"".join(kept.read(name) for name in kept.namelist())
    for value in (b"sess-8f7e6d", b"csrf-1a2b3c4d", b"keep-me-5x5x"):
        assert value not in everything
    assert b"theme=dk" in everything  # a value under 4 characters is left: it would be found by chance anywhere


def test_a_secret_url_encoded_twice_is_redacted_and_checked() -> None:
    """A URL holding the secret, itself put in a URL (Django's ?next=), encodes it twice."""
    secret = "abc+def/ghi="
    twice = quote(quote(secret, safe=""), safe="")
    assert twice == "abc%252Bdef%252Fghi%253D"
    raw = archive({"trace.trace": orjson.dumps({"url": f"/login/?next=%2Fx%3Ft%3D{twice}"}) + b"\n"})
    assert find_leak(raw, [secret]) is not None  # the check knows the form...
    outcome = keep_without_secrets(raw, [secret])
    assert outcome.data is not None and twice.encode() not in outcome.data  # ...and the redactor removes it


def test_a_line_nested_deeper_than_json_can_be_written_is_redacted_as_text() -> None:
    secret = "deep-secret-1234"
    deep = "[" * 300 + f'"{secret}"' + "]" * 300
    raw = archive({"trace.trace": b'{"type":"before"}\n' + deep.encode() + b"\n"})
    outcome = keep_without_secrets(raw, [secret])
    assert outcome.note is None and outcome.data is not None
    with zipfile.ZipFile(io.BytesIO(outcome.data)) as kept:
        assert secret.encode() not in kept.read("trace.trace")


def test_short_cookie_values_leave_the_traces_structure_alone() -> None:
    """uid=1042 must not turn a time of 1701042.5 or a key "name" into ***: the viewer must read it."""
    network = orjson.dumps({"snapshot": {"request": {"headers": [
        {"name": "Cookie", "value": "uid=1042; theme=name; sessionid=sess-0a1b2c3d4e"}]}}}) + b"\n"
    trace = orjson.dumps({"type": "before", "startTime": 1701042.5, "name": "click"}) + b"\n"
    outcome = keep_without_secrets(archive({"trace.trace": trace, "trace.network": network}), [])
    assert outcome.data is not None
    with zipfile.ZipFile(io.BytesIO(outcome.data)) as kept:
        assert orjson.loads(kept.read("trace.trace")) == {"type": "before", "startTime": 1701042.5, "name": "click"}
        assert b"sess-0a1b2c3d4e" not in kept.read("trace.network")


def test_a_cookie_a_page_script_set_never_reaches_the_trace(site: str, work: Workdir) -> None:
    """Never sent in a request, so no header holds it: the context's cookies are secrets of the trace."""
    token = "tok-5e4d3c2b1a0f"
    task = work.task(f"""
trace = "on-failure"
[[accounts]]
id = "a"
[[steps]]
goto = "{site}/feed"
[[steps]]
evaluate = "document.cookie = 'token={token}; path=/'; document.body.append(document.cookie); 1"
[[steps]]
click = "#nowhere"
timeout_ms = 500
""")
    result = warmup(*work.run_args(task))
    assert result.returncode == 1
    [trace] = list(work.artifacts.glob("*/a/trace-1.zip"))
    with zipfile.ZipFile(trace) as kept:
        everything = b"".join(kept.read(name) for name in kept.namelist())
    assert everything and token.encode() not in everything
