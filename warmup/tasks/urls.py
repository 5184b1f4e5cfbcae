"""URL patterns of ``expect_url``, ``wait_for_url`` and ``when = { url = ... }``: one definition.

A pattern is a glob matched against the whole URL, or ``re:`` and a regular expression searched
in it. Globs: ``**`` matches anything, ``*`` anything but ``/``, ``?`` one character but ``/``,
``{a,b}`` either; every other character is itself. A glob that does not start with a scheme or a
wildcard is resolved against the account's ``base_url`` first (``/admin/`` with a base of
``http://site/`` matches ``http://site/admin/``), as relative ``goto`` targets are.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

from warmup.errors import UsageError
from warmup.tasks.common import REFERENCE

REGEX_PREFIX = "re:"
_SCHEME = re.compile(r"\A[A-Za-z][A-Za-z0-9+.-]*:")


def glob_regex(glob: str) -> str:
    """A glob as a regular expression matching the whole text."""
    out: list[str] = []
    i, depth = 0, 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    out.extend(")" * depth)
    return r"\A" + "".join(out) + r"\Z"


def check_url_pattern(pattern: str, where: str) -> None:
    """A pattern as written that cannot be compiled is refused at load, naming where it is.

    Its ``${...}`` references stand for plain text here (checked as ``x``); a glob's ``{ }`` must
    pair up, one level deep (``{a,b}``).
    """
    plain = REFERENCE.sub("x", pattern)
    if plain.startswith(REGEX_PREFIX):
        try:
            re.compile(plain[len(REGEX_PREFIX):])
        except re.error as exc:
            raise UsageError(f"{where}: {plain!r} is not a valid regular expression ({exc})") from None
        return
    if not plain:
        raise UsageError(f"{where}: the URL pattern is empty")
    depth = 0
    for c in plain:
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth < 0 or depth > 1:
            break
    if depth:
        raise UsageError(f"{where}: the glob {pattern!r} has unbalanced or nested {{ }} "
                         "(write {a,b} for either; for other patterns use re:)")


def url_matcher(pattern: str, base_url: str | None = None) -> re.Pattern[str]:
    """A compiled pattern whose ``search`` says whether a URL matches ``pattern``."""
    if pattern.startswith(REGEX_PREFIX):
        return re.compile(pattern[len(REGEX_PREFIX):])
    if base_url and not _SCHEME.match(pattern) and not pattern.startswith("*"):
        pattern = urljoin(base_url, pattern)
    return re.compile(glob_regex(pattern))


def url_matches(pattern: str, url: str, base_url: str | None = None) -> bool:
    return url_matcher(pattern, base_url).search(url) is not None
