"""Browser identity: the Playwright ``new_context`` options a task sets for all accounts, and an
account for itself.

Keys (``IDENTITY_KEYS``), at the top of a task file and in an ``[[accounts]]`` table (or an
accounts file's columns): ``proxy``, ``user_agent``, ``viewport``, ``locale``, ``timezone_id``,
``geolocation``, ``color_scheme``, ``extra_http_headers``, ``http_credentials``, ``device``.

Invariants:

- ``check_identity`` validates one table's values and returns them *as written* (references
  unresolved): that is what ``Task.record`` puts into the log, unscrubbed. So a value that is a
  credential (a proxy or HTTP password, a credential-looking header) is never a literal: it must
  come from ``${env.NAME}`` or a credential-named account variable (``SECRET_VAR``), both of which
  the scrubber hides.
- Layers, later wins, key by key: the task's ``device`` descriptor, the task's own keys, the
  account's ``device`` descriptor, the account's own keys. ``extra_http_headers`` merge header by
  header (names case-insensitively); every other key is replaced whole.
- ``identity_templates`` lists every string that may hold ``${...}`` (for the loader, which renders
  each for each account at load time and learns the ``${env.*}`` names, the secrets), and
  ``check_rendered`` checks what a template renders to where the value has a fixed vocabulary.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
import zoneinfo
from pathlib import Path
from typing import Any

from warmup.errors import UsageError
from warmup.tasks.common import SECRET_VAR, _describe, _is, _type_name, references

PROXY_KEYS = ("server", "username", "password", "bypass")
CREDENTIAL_KEYS = ("username", "password", "origin")
GEOLOCATION_KEYS = ("latitude", "longitude", "accuracy")
COLOR_SCHEMES = ("light", "dark", "no-preference")
MAX_VIEWPORT = 10_000
# Headers whose value is a credential, beyond any name SECRET_VAR matches (token, api_key...).
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
HEADER_NAME = re.compile(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")  # an HTTP token (RFC 9110)
LOCALE = re.compile(r"\A[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*\Z")  # BCP 47, loosely
PROXY_SCHEMES = ("http", "https", "socks4", "socks5")

_SCALARS = ("user_agent", "locale", "timezone_id", "color_scheme", "device")
_TABLES: dict[str, tuple[str, ...]] = {
    "proxy": PROXY_KEYS,
    "viewport": ("width", "height"),
    "geolocation": GEOLOCATION_KEYS,
    "http_credentials": CREDENTIAL_KEYS,
}
IDENTITY_KEYS: frozenset[str] = frozenset({*_SCALARS, *_TABLES, "extra_http_headers"})
# Where a descriptor's camelCase field goes in new_context (Playwright's Python names).
_DEVICE_FIELDS = {
    "userAgent": "user_agent",
    "viewport": "viewport",
    "screen": "screen",
    "deviceScaleFactor": "device_scale_factor",
    "isMobile": "is_mobile",
    "hasTouch": "has_touch",
}


# -- checking a table as written --------------------------------------------------------------------
def check_identity(table: dict[str, Any], where: str) -> dict[str, Any]:
    """The identity keys of ``table``, checked; {} when it sets none. Raises UsageError (one line)."""
    found: dict[str, Any] = {}
    for key in sorted(IDENTITY_KEYS & set(table)):
        value = table[key]
        at = f"{where}: {key}"
        if key in _SCALARS:
            _check_string(value, at)
            if not references(value):
                check_rendered(key, value, where)
        elif key == "extra_http_headers":
            _check_headers(value, at)
        else:
            _check_table(key, value, where)
        found[key] = value
    return found


def _check_string(value: Any, at: str) -> None:
    if not isinstance(value, str):
        raise UsageError(f"{at} must be a string, not {_describe(value)}")
    if not value.strip():
        raise UsageError(f"{at} must not be empty")
    if "\n" in value or "\r" in value:
        raise UsageError(f"{at} must be one line")


def _check_table(key: str, value: Any, where: str) -> None:
    at = f"{where}: {key}"
    fields = _TABLES[key]
    if not isinstance(value, dict):
        raise UsageError(f"{at} must be a table {{ {', '.join(fields)} }}, not {_describe(value)}")
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise UsageError(f"{at}: unknown field {unknown[0]!r} (known: {', '.join(fields)})")
    if key == "viewport":
        for name in ("width", "height"):
            size = value.get(name)
            if not _is(size, int):
                raise UsageError(f"{at}.{name} must be {_type_name(int)}, not {_describe(size)}"
                                 if name in value else f"{at} needs {name!r}")
            if not 1 <= size <= MAX_VIEWPORT:
                raise UsageError(f"{at}.{name} must be from 1 to {MAX_VIEWPORT} pixels, not {size}")
        return
    if key == "geolocation":
        limits = {"latitude": (-90, 90), "longitude": (-180, 180), "accuracy": (0, None)}
        for name, (low, high) in limits.items():
            if name not in value:
                if name == "accuracy":
                    continue
                raise UsageError(f"{at} needs {name!r}")
            number = value[name]
            if not _is(number, (int, float)) or not math.isfinite(number):
                raise UsageError(f"{at}.{name} must be a number, not {_describe(number)}")
            if number < low or (high is not None and number > high):
                bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
                raise UsageError(f"{at}.{name} must be {bounds}, not {number}")
        return
    for name, item in value.items():
        _check_string(item, f"{at}.{name}")
    required = ("server",) if key == "proxy" else ("username", "password")
    for name in required:
        if name not in value:
            raise UsageError(f"{at} needs {name!r}")
    if key == "proxy" and "password" in value and "username" not in value:
        raise UsageError(f"{at}: a password needs a username")
    if key == "proxy" and not references(value["server"]):
        check_rendered("proxy.server", value["server"], where)
    if "password" in value:
        _require_secret_reference(value["password"], f"{at}.password")


def _check_headers(value: Any, at: str) -> None:
    if not isinstance(value, dict):
        raise UsageError(f"{at} must be a table of header names and values, not {_describe(value)}")
    seen: dict[str, str] = {}
    for name, item in value.items():
        if not HEADER_NAME.match(name):
            raise UsageError(f"{at}: {name!r} is not a header name (letters, digits and - _ . etc., no spaces)")
        if name.lower() in seen:
            raise UsageError(f"{at}: the header {name!r} is set twice ({seen[name.lower()]!r} and {name!r})")
        seen[name.lower()] = name
        _check_string(item, f"{at}.{name}")
        if is_secret_header(name):
            _require_secret_reference(item, f"{at}.{name}")


def is_secret_header(name: str) -> bool:
    """A header whose value is a credential (it must come from a secret reference).

    Generous on purpose: a header value is written into the task's record as it is, so a name
    that may carry one (X-Auth, X-Session-Id, X-Signature, X-CSRF-Token...) needs a reference.
    """
    lowered = name.lower()
    return (lowered in SECRET_HEADERS or bool(SECRET_VAR.search(name.replace("-", "_")))  # X-Goog-Api-Key
            or bool(_CREDENTIAL_HEADER.search(lowered)))


_CREDENTIAL_HEADER = re.compile(r"auth|session|key|sig|csrf|xsrf|jwt|bearer")


def _require_secret_reference(value: str, at: str) -> None:
    """A credential is never written literally: the task's record keeps identity values as written.

    At least one reference, each one ``${env.NAME}`` or ``${account.<credential-named variable>}``
    (both secrets the scrubber hides); literal text around them ("Bearer ") is allowed.
    """
    refs = references(value)
    if not refs or not all(_is_secret_ref(ref) for ref in refs):
        raise UsageError(
            f"{at} is a credential: write it as ${{env.NAME}} or ${{account.NAME}} with a credential-named "
            "account variable (password, token...), never literally, since the task's definition goes into the log"
        )


def _is_secret_ref(ref: str) -> bool:
    scope, _, name = ref.partition(".")
    return (scope == "env" and bool(name)) or (scope == "account" and name != "id" and bool(SECRET_VAR.search(name)))


def identity_from_columns(row: dict[str, str], where: str) -> dict[str, Any]:
    """The identity columns of a CSV row, popped from ``row``, as a table for ``check_identity``.

    A scalar key is its own column (``user_agent``); a table's fields are dotted columns
    (``proxy.server``, ``viewport.width``, ``extra_http_headers.X-Team``). An empty cell sets
    nothing. Viewport sizes are read as integers and geolocation fields as numbers.
    """
    table: dict[str, Any] = {}
    for column in [c for c in row if c in IDENTITY_KEYS or c.partition(".")[0] in IDENTITY_KEYS]:
        cell = row.pop(column)
        key, dot, field = column.partition(".")
        if key in _SCALARS and not dot:
            if cell:
                table[key] = cell
            continue
        if key in _SCALARS or not field:
            example = f"{key}.{(_TABLES.get(key) or ('X-Name',))[0]}"
            raise UsageError(f"{where}: column {column!r}: write one column per field, such as {example!r}")
        if not cell:
            continue
        value: Any = cell
        if key in ("viewport", "geolocation"):
            try:
                value = int(cell) if key == "viewport" else float(cell)
            except ValueError:
                raise UsageError(f"{where}: column {column!r} must be a number, not {_describe(cell)}") from None
        table.setdefault(key, {})[field] = value
    return table


# -- checking a rendered value ----------------------------------------------------------------------
def check_rendered(key: str, value: str, where: str, *, template: str | None = None) -> None:
    """Check what the string at ``key`` (a path from ``identity_templates``) renders to.

    Values with a vocabulary are checked: ``device``, ``color_scheme``, ``timezone_id``, ``locale``
    and ``proxy.server``. ``template`` is what was written: when it refers to ``${env.*}`` or a
    a reference that may hold a secret (the loader's ``mentions_secret``) the message quotes the
    template, never the value. Called for
    every template of every account, so the usual case (nothing wrong) does little.
    """
    if key not in _VOCABULARY_KEYS:
        return
    problem = _vocabulary_problem(key, value)
    if problem is None:
        return
    shown = f"{template!r} (as rendered)" if template is not None else repr(value)
    raise UsageError(f"{where}: {key}{problem.replace('{shown}', shown)}")


_VOCABULARY_KEYS = frozenset({"device", "color_scheme", "timezone_id", "locale", "proxy.server"})


def _vocabulary_problem(key: str, value: str) -> str | None:
    """What is wrong with ``value`` at ``key``, to follow the key in a message ({shown} is the value)."""
    if key == "device":
        if value in device_descriptors():
            return None
        close = difflib.get_close_matches(value, list(device_descriptors()), n=1, cutoff=0.6)
        return f": unknown device {{shown}} ({f'did you mean {close[0]!r}?' if close else 'see Playwright devices'})"
    if key == "color_scheme":
        schemes = ", ".join(map(repr, COLOR_SCHEMES))
        return None if value in COLOR_SCHEMES else f" must be one of {schemes}, not {{shown}}"
    if key == "timezone_id":
        hint = "use an IANA name such as 'Europe/Paris'"
        return None if _known_time_zone(value) else f": unknown time zone {{shown}} ({hint})"
    if key == "locale":
        return None if LOCALE.match(value) else ": {shown} is not a locale (write it as 'en-US' or 'fr')"
    return _proxy_server_problem(value)


@functools.lru_cache(maxsize=1024)  # checked for every account: a time zone is looked up once
def _known_time_zone(name: str) -> bool:
    if name.startswith("/") or ".." in name or "\\" in name:  # zoneinfo would read it as a path
        return False
    if not _have_time_zone_data():  # none installed here: Chromium will say
        return True
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


@functools.cache
def _have_time_zone_data() -> bool:
    return bool(zoneinfo.available_timezones())


def _proxy_server_problem(value: str) -> str | None:
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "http", value
    if scheme.lower() not in PROXY_SCHEMES:
        return f": {{shown}} has an unknown scheme (use {', '.join(PROXY_SCHEMES)})"
    host = rest.split("/", 1)[0]
    if "@" in host:
        return ": put the proxy's user and password in proxy.username and proxy.password, not in the server's address"
    if not host or host.startswith(":"):
        return ": {shown} names no host (write it as http://host:port)"
    return None


# -- the templates a loader renders -------------------------------------------------------------
def identity_templates(identity: dict[str, Any]) -> list[tuple[str, str]]:
    """(key path, template) for every string of ``identity``: ``user_agent``, ``proxy.server``,
    ``extra_http_headers.X-Name``... (numbers hold no references)."""
    found: list[tuple[str, str]] = []
    for key in sorted(identity):
        value = identity[key]
        if isinstance(value, str):
            found.append((key, value))
        elif isinstance(value, dict):
            found.extend((f"{key}.{name}", item) for name, item in value.items() if isinstance(item, str))
    return found


def merge_identity(task_identity: dict[str, Any], account_identity: dict[str, Any]) -> dict[str, Any]:
    """The identity keys in effect for an account, as written: the account's win key by key, and
    ``extra_http_headers`` merge header by header (an account's header replaces the task's of the
    same name, in any case). Device descriptors are not expanded here (``layers`` does it)."""
    merged = {**task_identity, **account_identity}
    if "extra_http_headers" in task_identity and "extra_http_headers" in account_identity:
        merged["extra_http_headers"] = merge_headers(
            task_identity["extra_http_headers"], account_identity["extra_http_headers"]
        )
    return merged


def merge_headers(base: dict[str, str], over: dict[str, str]) -> dict[str, str]:
    """``base`` with ``over``'s headers added or replacing those of the same name (case-insensitively)."""
    replaced = {name.lower() for name in over}
    return {**{k: v for k, v in base.items() if k.lower() not in replaced}, **over}


# -- device descriptors ---------------------------------------------------------------------------
def device_options(name: str) -> dict[str, Any]:
    """A device's ``new_context`` options (user_agent, viewport, screen, device_scale_factor,
    is_mobile, has_touch); KeyError when Playwright has no such device."""
    descriptor = device_descriptors()[name]
    return {_DEVICE_FIELDS[k]: v for k, v in descriptor.items() if k in _DEVICE_FIELDS}


@functools.cache
def device_descriptors() -> dict[str, dict[str, Any]]:
    """Playwright's device descriptors, read from the installed package without starting it.

    Older drivers ship them as ``deviceDescriptorsSource.json``; newer ones bundle that JSON into
    ``lib/coreBundle.js`` as an object literal (unquoted keys), which is cut out and read here.
    """
    import playwright  # the package's files only; nothing is started

    package = Path(playwright.__file__).parent / "driver" / "package"
    for candidate in sorted(package.glob("lib/**/deviceDescriptorsSource.json")):
        return json.loads(candidate.read_text(encoding="utf-8"))
    for bundle in sorted(package.glob("lib/*.js")):
        text = bundle.read_text(encoding="utf-8", errors="replace")
        found = _descriptors_in_bundle(text)
        if found:
            return found
    raise UsageError(f"cannot find Playwright's device descriptors under {package} (is Playwright installed?)")


def _descriptors_in_bundle(text: str) -> dict[str, dict[str, Any]] | None:
    marker = text.find('deviceDescriptorsSource.json"()')
    if marker < 0:
        return None
    start = text.find("{", text.find("=", marker))
    depth, in_string, i = 0, False, start
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                break
        i += 1
    literal = re.sub(r'(?m)^(\s*)([A-Za-z_$][\w$]*):', r'\1"\2":', text[start : i + 1])
    try:
        found = json.loads(literal)
    except json.JSONDecodeError:
        return None
    return found if isinstance(found, dict) and found else None
