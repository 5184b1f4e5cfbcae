"""Secrets out of a Playwright trace archive: redact every entry, then check the whole result.

A trace holds what the browser saw and did: the call log (``fill`` values, headers given to the
context), DOM snapshots (input values, echoed text), the network log (URLs, request bodies,
headers, cookies) and the resources (bodies, images, screencast frames). warmup knows every
secret value, so a trace can be kept without them:

- ``redact_archive``: every entry that is UTF-8 text is redacted; JSON (a whole entry, or every
  line of a JSON-lines entry such as ``trace.trace``/``trace.network``) is parsed and each string,
  key and number is redacted on its own, then written back, so the entry stays valid JSON; other
  text is redacted as a whole. An entry that is not UTF-8 text (images, fonts, screencast frames,
  compressed or binary bodies) cannot be redacted safely and is dropped. A redacted resource is
  renamed after its new content (Playwright names resources by the SHA-1 of their bytes, a hash of
  secret-bearing bytes otherwise) and every reference to it follows.
- ``find_leak``: re-reads the archive written and looks in every entry's bytes for every form of
  every secret of ``SHORT_SECRET`` characters or more (shorter ones would be found by chance in
  any number): the forms the redactor replaces, plus UTF-16. Anything found means the trace is
  not kept.

Forms redacted (``TextRedactor``): all the forms ``warmup.tasks.Scrubber`` knows (raw, URL-encoded,
JSON/JS/CSS/HTML-escaped, mixed), the same URL encodings of the secret's Latin-1 bytes (a form
posted from a page without a UTF-8 charset), the secret with its non-ASCII characters turned into
U+FFFD (how Playwright decodes such a body), base64 of the secret wherever it sits in encoded data
(its three alignments, standard and URL-safe alphabets: this covers ``user:password`` in a
basic-auth header), and any ``Basic`` token whose decoded text holds a secret.

Cookies are secrets too (the brief's rule 5), though warmup does not know them in advance: the
value of every cookie the trace itself holds (``cookie_values``: ``Cookie`` and ``Set-Cookie``
headers, the network log's and the storage state's cookie lists), and of the context's cookies
when tracing stops (``trace.Tracer.stop``), is added to the secrets first: ``COOKIE_MIN``
characters or more, as a shorter value would match the trace's own numbers and keys.

Invariant: with no secrets and no cookies the archive is kept exactly as Playwright wrote it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import io
import json
import re
import zipfile
from collections.abc import Iterable
from typing import Any, AnyStr, Generic
from urllib.parse import quote, quote_plus

import orjson

from warmup.tasks import Scrubber
from warmup.tasks.common import REDACTED, SHORT_SECRET

RESOURCES = "resources/"
# A cookie value shorter than this is not taken as a secret: "1042" or "dark" would match numbers and
# words of the trace's own structure, breaking it; session ids and tokens are longer.
COOKIE_MIN = 8
_SHA1_NAME = re.compile(r"^[0-9a-f]{40}")
_BASIC = re.compile(r"(?i)(\bbasic\s+)([A-Za-z0-9+/_-]{4,}={0,2})")


class Needles(Generic[AnyStr]):
    """Finds and replaces any of many literal strings (each ``SHORT_SECRET`` long or more), longest first.

    Few needles: one ``in`` each. Many (a task may have 10,000 secrets): the text is walked once,
    looking its 4-character windows up in an index of the needles' starts.
    """

    DIRECT = 64

    def __init__(self, needles: Iterable[AnyStr]) -> None:
        self.needles: list[AnyStr] = sorted({n for n in needles if len(n) >= SHORT_SECRET}, key=len, reverse=True)
        self._index: dict[AnyStr, list[AnyStr]] = {}
        if len(self.needles) > self.DIRECT:
            for n in self.needles:
                self._index.setdefault(n[:SHORT_SECRET], []).append(n)

    def found(self, text: AnyStr) -> list[AnyStr]:
        """The needles in ``text``, longest first."""
        if not self._index:
            return [n for n in self.needles if n in text]
        hits: set[AnyStr] = set()
        for i in range(len(text) - SHORT_SECRET + 1):
            candidates = self._index.get(text[i : i + SHORT_SECRET])
            if candidates is not None:
                hits.update(n for n in candidates if text.startswith(n, i))
        return sorted(hits, key=len, reverse=True)

    def replace(self, text: AnyStr, by: AnyStr) -> AnyStr:
        for needle in self.found(text):
            text = text.replace(needle, by)
        return text


def base64_cores(data: bytes) -> set[str]:
    """The base64 characters that ``data`` always gives, wherever it sits in the encoded bytes.

    At each of the three alignments, the characters made only of ``data``'s own bits (standard and
    URL-safe alphabets); those shorter than ``SHORT_SECRET`` are left out.
    """
    cores: set[str] = set()
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + data).decode("ascii")
        core = encoded[-(-8 * k // 6) : 8 * (k + len(data)) // 6]
        if len(core) >= SHORT_SECRET:
            cores.update({core, core.replace("+", "-").replace("/", "_")})
    return cores


def _url_forms(secret: str, encoding: str) -> set[str]:
    try:
        forms = {quote_plus(secret, encoding=encoding)}
        forms |= {quote(secret, safe=safe, encoding=encoding) for safe in Scrubber.URL_SAFE}
    except UnicodeEncodeError:
        return set()
    return forms | {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in forms}


def _encodings(secret: str) -> list[bytes]:
    out = [secret.encode("utf-8")]
    try:
        out.append(secret.encode("latin-1"))
    except UnicodeEncodeError:
        pass
    return out


def extra_forms(secret: str) -> set[str]:
    """The forms of ``secret`` that the Scrubber does not know (see the module's docstring)."""
    forms = {c for raw in _encodings(secret) for c in base64_cores(raw)}
    # URL-encoded twice: a URL holding the secret, itself put in a URL (Django's ?next=)
    once = {f for f in _url_forms(secret, "utf-8") if f != secret}
    forms |= {twice for f in once for twice in _url_forms(f, "utf-8")} - once
    if not secret.isascii():
        forms |= _url_forms(secret, "latin-1")
        forms.add("".join(c if c.isascii() else "\ufffd" for c in secret))
    return forms


def checked_forms(secret: str) -> set[bytes]:
    """Every form ``find_leak`` looks for, as bytes: an independent list, not the redactor's code."""
    text = {secret, " ".join(secret.split()), json.dumps(secret)[1:-1], orjson.dumps(secret).decode()[1:-1],
            html.escape(secret), html.escape(secret, quote=False)}
    text |= _url_forms(secret, "utf-8") | extra_forms(secret)
    out = {t.encode("utf-8") for t in text}
    out |= set(_encodings(secret))
    out |= {secret.encode(e) for e in ("utf-16-le", "utf-16-be")}
    return out


class TextRedactor:
    """Replaces every form of every secret in a text with ``***`` (the forms: the module's docstring)."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [s for s in secrets if s]
        self.scrub = Scrubber(self.secrets)
        self.extra = Needles(f for s in self.secrets if len(s) >= SHORT_SECRET for f in extra_forms(s))
        self.long = Needles(self.secrets)  # (only those of SHORT_SECRET characters or more): in numbers

    def __call__(self, text: str) -> str:
        if "asic" in text or "ASIC" in text:  # first: the whole token, before a piece of it is redacted
            text = _BASIC.sub(self._basic, text)
        text = self.extra.replace(text, REDACTED)  # then whole forms, before the Scrubber redacts a piece
        return self.scrub(text)

    def _basic(self, match: re.Match[str]) -> str:
        token = match.group(2)
        try:
            decoded = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_" if "-" in token or "_" in token
                                       else None).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return match.group(0)
        if any(s in decoded for s in self.secrets) or self.scrub(decoded) != decoded:
            return match.group(1) + REDACTED
        return match.group(0)

    def deep(self, value: Any, renamed: dict[str, str]) -> Any:
        """Every string, key and number inside a JSON value redacted; resource names renamed."""
        if isinstance(value, str):
            return renamed.get(value) or self(value)
        if isinstance(value, dict):
            return {self(str(k)): self.deep(v, renamed) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v, renamed) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return REDACTED if self.long.found(str(value)) else value
        return value


def _redact_entry(data: bytes, redact: TextRedactor, renamed: dict[str, str]) -> bytes | None:
    """The entry redacted, or None when it is not UTF-8 text (it cannot be redacted safely).

    JSON: parsed, redacted value by value, written back. JSON lines (the first line is JSON): each
    line so, and a line that is not JSON (a line cut short) redacted as text. Other text: as a whole.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        return orjson.dumps(redact.deep(orjson.loads(data), renamed))
    except orjson.JSONDecodeError:
        pass
    except (orjson.JSONEncodeError, RecursionError):  # nested deeper than orjson writes: as text
        return redact(text).encode("utf-8")
    lines = text.split("\n")
    try:
        orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        return redact(text).encode("utf-8")
    return b"\n".join(_redact_line(line, redact, renamed) for line in lines)


def _redact_line(line: str, redact: TextRedactor, renamed: dict[str, str]) -> bytes:
    if not line.strip():
        return line.encode("utf-8")
    try:
        return orjson.dumps(redact.deep(orjson.loads(line), renamed))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, RecursionError):  # (too deep to write back: as text)
        return redact(line).encode("utf-8")


def cookie_values(data: bytes) -> set[str]:
    """Every cookie value (``COOKIE_MIN`` characters or more) the archive's trace files hold.

    From ``Cookie`` headers (``a=1; b=2``), ``Set-Cookie`` headers (``a=1; Path=/``), and every
    ``{name, value}`` in a list named ``cookies`` (the network log's, a storage state's).
    ``zipfile.BadZipFile`` when ``data`` is not a zip archive.
    """
    found: set[str] = set()

    def header(name: str, value: str) -> None:
        pairs = value.split(";") if name == "cookie" else [value.split(";", 1)[0]]  # Set-Cookie: its first pair
        for part in pairs:
            _, eq, cookie = part.strip().partition("=")
            if eq:
                found.add(cookie.strip().strip('"'))

    def walk(value: Any, key: str, depth: int = 0) -> None:
        if depth > 64:
            return
        if isinstance(value, dict):
            name, text = value.get("name"), value.get("value")
            if isinstance(name, str) and isinstance(text, str):
                if name.lower() in ("cookie", "set-cookie"):
                    for line in text.splitlines() or [text]:  # several Set-Cookie lines may be joined
                        header(name.lower(), line)
                elif key == "cookies":
                    found.add(text)
            for k, item in value.items():
                walk(item, k, depth + 1)
        elif isinstance(value, list):
            for item in value:
                walk(item, key, depth + 1)

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if not info.filename.endswith((".trace", ".network")):
                continue
            for line in archive.read(info).splitlines():
                try:
                    walk(orjson.loads(line), "")
                except orjson.JSONDecodeError:
                    continue
    return {v for v in found if len(v) >= COOKIE_MIN}


def redact_archive(data: bytes, secrets: list[str]) -> tuple[bytes, list[str]]:
    """The archive with every entry redacted or dropped; returns it and the names dropped.

    Resources first, so the trace files that name them can follow their new names.
    ``zipfile.BadZipFile`` when ``data`` is not a zip archive.
    """
    redact = TextRedactor(secrets)
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        infos = [i for i in source.infolist() if not i.is_dir()]
        contents = {i.filename: source.read(i) for i in infos}
    ordered = sorted(contents, key=lambda name: not name.startswith(RESOURCES))
    renamed: dict[str, str] = {}  # old resource name, as the trace files give it -> new
    kept: dict[str, bytes] = {}
    dropped: list[str] = []
    for name in ordered:
        clean = _redact_entry(contents[name], redact, renamed)
        if clean is None:
            dropped.append(name)
            continue
        if name.startswith(RESOURCES) and clean != contents[name]:
            base = name[len(RESOURCES) :]
            match = _SHA1_NAME.match(base)
            if match is not None:
                new = hashlib.sha1(clean).hexdigest() + base[match.end() :]  # noqa: S324 (Playwright's naming)
                name = RESOURCES + new
                renamed[base], renamed[RESOURCES + base] = new, name  # (referred to both ways)
        kept[name] = clean
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name in sorted(kept, key=lambda n: n.startswith(RESOURCES)):  # the trace files first, as Playwright
            target.writestr(name, kept[name])
    return out.getvalue(), dropped


def find_leak(data: bytes, secrets: list[str]) -> str | None:
    """Why the archive may not be kept (an entry holding a form of a secret, an unreadable archive), or None.

    Never names the secret or shows its form: the reason is logged.
    """
    needles = Needles(f for s in secrets if len(s) >= SHORT_SECRET for f in checked_forms(s))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            bad = archive.testzip()
            if bad is not None:
                return f"its entry {bad} is corrupt"
            for info in archive.infolist():
                if needles.found(archive.read(info)):
                    return f"its entry {info.filename} still holds a secret after redaction"
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"it is not a readable zip archive ({exc})"
    return None
