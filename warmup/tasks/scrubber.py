"""The scrubber: every secret value, in every form a message can carry it, becomes ``***``."""

from __future__ import annotations

import bisect
import functools
import html.entities
import re
from typing import Any
from urllib.parse import quote, quote_plus, unquote

from warmup.tasks.common import REDACTED


class Scrubber:
    """Replaces every secret value, in any form a message can carry it, in a text with ``***``.

    Forms (each one is replaced; tests/test_scrubber.py has a secret of each special character):

    - raw, URL-encoded (as a browser or ``quote``/``quote_plus`` writes it, hex in either case),
      with ``\\`` turned into ``/`` (a browser does that in an http URL's path);
    - escaped as a string literal: JSON/JavaScript (``\\\\``, ``\\"``, ``\\uXXXX``; Playwright
      quotes selectors that way), Python ``repr`` (``\\'``, ``\\xXX``), CSS (``\\"``, ``\\22 ``),
      each possibly escaped twice over;
    - HTML entities (``&quot;``, ``&#34;``, ``&#x22;``...), as element previews show attributes;
    - mixed: every character of the secret may come in any of its forms independently.

    Error texts are shortened (``…``) and have their whitespace collapsed before they are
    recorded, so a secret can reach the scrubber cut or squeezed: the whitespace-collapsed form is
    a form too, and the end of a text cut just before ``…`` that is the start of a secret (3
    characters or more, in any form above) is replaced as well.

    Cost. The runner scrubs every event on its event loop, and a task may have 10,000 secrets
    (bench/tasks.py). Every form above leaves a secret's ASCII letters and digits as they are, so
    a secret can only be in a text that holds its *anchor*: up to ``ANCHOR`` characters of its
    longest run of letters and digits. A call looks the text's runs of letters and digits up in an
    index of the anchors, keeps the secrets found whose every run is in the text, and tries the
    forms of those (and of secrets with no letter or digit at all) only, longest secret first; a
    secret's escaped-form pattern is compiled when first needed. The end of
    a text cut before ``…`` is walked over the secrets sorted as a trie (``_cut_start``), trying
    at each place only the characters whose forms can start with the text's character there.
    """

    ELLIPSIS = "…"
    MIN_CUT = 3
    ANCHOR = 4

    # What a browser leaves unencoded in a URL's path, query or fragment (it encodes spaces and
    # non-ASCII characters, not this punctuation), with and without ``%`` itself.
    URL_SAFE = ("", "/", "!$&'()*+,;=:@/?#[]~", "!$&'()*+,;=:@/?#[]~%")

    MIN_PIECE = 4

    def __init__(self, secrets: list[str]) -> None:
        # A secret put raw into a URL is cut where URL syntax says (a '#' starts the fragment, which
        # is never sent; '&' separates parameters): each piece of 4 characters or more is a secret too.
        pieces = {p for s in secrets for p in re.split(r"[#?&=/\\]", s) if len(p) >= self.MIN_PIECE and p != s}
        self._plain = sorted({s for s in [*secrets, *pieces] if s}, key=len, reverse=True)
        self._rank = {s: i for i, s in enumerate(self._plain)}  # the order secrets are tried in
        self._forms_of = {s: self._forms_for(s) for s in self._plain}
        self._forms = sorted({f for forms in self._forms_of.values() for f in forms}, key=len, reverse=True)
        # anchor length -> anchor -> the secrets it anchors; secrets without a letter or digit
        self._anchors: dict[str, list[str]] = {}
        self._anchor_sizes: set[int] = set()
        self._anchorless: list[str] = []
        self._runs: dict[str, list[str]] = {}  # secret -> its runs of letters and digits, in order
        for s in self._plain:
            runs = self._runs[s] = _ALNUM_RUN.findall(s)
            if not runs:
                self._anchorless.append(s)
                continue
            anchor = max(runs, key=len)[: self.ANCHOR]
            self._anchors.setdefault(anchor, []).append(s)
            self._anchor_sizes.add(len(anchor))
        self._escaped: dict[str, re.Pattern[str]] = {}  # secret -> its escaped forms, when first needed
        self._form_starts: dict[str, list[str]] | None = None  # for cut texts: first 3 characters -> forms
        self._sorted: list[str] | None = None  # for cut texts: secrets longer than MIN_CUT, sorted
        self._nodes: dict[tuple[int, int, int], dict[str, tuple[int, int]]] = {}  # see _children

    @classmethod
    def _forms_for(cls, s: str) -> set[str]:
        forms = {s, quote_plus(s), " ".join(s.split())}
        for raw in {s, s.replace("\\", "/")}:
            for safe in cls.URL_SAFE:
                encoded = quote(raw, safe=safe)
                forms.update({encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)})
        forms.discard("")
        return forms

    def _candidates(self, text: str) -> list[str]:
        """The secrets that may be in ``text`` in some form, in the order they are tried.

        Those whose anchor the text holds, and then all their runs of letters and digits, in
        their order (every form keeps them so), plus those without a letter or digit.
        """
        found = set(self._anchorless)
        if self._anchors:
            anchors = self._anchors
            hits = {
                run[i : i + size]
                for run in _ALNUM_RUN.findall(text)
                for size in self._anchor_sizes
                for i in range(len(run) - size + 1)
            }
            for anchor in hits & anchors.keys():
                found.update(s for s in anchors[anchor] if _in_order(self._runs[s], text))
        return sorted(found, key=self._rank.__getitem__)

    def _escaped_pattern(self, secret: str) -> re.Pattern[str]:
        """The secret with each character in any of its escaped forms (see _char_forms)."""
        pattern = self._escaped.get(secret)
        if pattern is None:
            if len(self._escaped) >= 4096:  # bounded: tens of KB each, and most secrets are never seen
                self._escaped.clear()
            pattern = self._escaped[secret] = re.compile("".join(_char_forms(c) for c in secret))
        return pattern

    def __call__(self, text: str) -> str:
        if not self._plain:
            return text
        candidates = self._candidates(text)
        if candidates:
            # The whole secret in any form first: a piece of it replaced before would hide the rest.
            for secret in candidates:  # longest first
                text = self._escaped_pattern(secret).sub(REDACTED, text)
            forms = sorted({f for s in candidates for f in self._forms_of[s]}, key=len, reverse=True)
            for form in forms:
                if form in text:
                    text = text.replace(form, REDACTED)
        if "%" in text:  # the last net: an encoding none of the forms above foresaw
            decoded = unquote(text)
            found = [s for s in self._candidates(decoded) if s in decoded]
            if found:
                for secret in found:
                    decoded = decoded.replace(secret, REDACTED)
                text = decoded
        if self.ELLIPSIS in text:
            text = self.ELLIPSIS.join(self._cut_prefix(part) for part in text.split(self.ELLIPSIS)[:-1]) + (
                self.ELLIPSIS + text.split(self.ELLIPSIS)[-1]
            )
        return text

    def _cut_prefix(self, before: str) -> str:
        """``before`` (text that was cut there) without a trailing start of a secret, in any form.

        The earliest start wins: a piece of a secret is a form too, and must not leave the
        secret's beginning before it.
        """
        cut = len(before)
        if self._form_starts is None:
            self._form_starts = {}
            for form in self._forms:
                if len(form) > self.MIN_CUT:
                    self._form_starts.setdefault(form[: self.MIN_CUT], []).append(form)
        # a form cut after k characters (3 <= k < its length): its first k are the end of before
        longest = len(self._forms[0]) if self._forms else 0
        for p in range(max(0, len(before) - longest), len(before) - self.MIN_CUT + 1):
            forms = self._form_starts.get(before[p : p + self.MIN_CUT])
            if forms is not None:
                tail = before[p:]
                if any(len(form) > len(tail) and form.startswith(tail) for form in forms):
                    cut = p
                    break
        start = self._escaped_prefix_start(before, cut)
        if start is not None:
            cut = start
        return before if cut == len(before) else before[:cut] + REDACTED

    def _escaped_prefix_start(self, before: str, limit: int) -> int | None:
        """Where ``before`` ends in the start (3 characters or more) of a secret in any escaped form,
        if that is before ``limit``.

        Walks the text character form by character form (each character's pattern from
        ``_char_forms``) from each place, over the secrets sorted as a trie: a node is the range of
        secrets that share a prefix, and at each place only the next characters whose forms can
        start with the text's character there are tried (a letter or digit is only itself). A cut
        may also fall inside an escape sequence: a trailing ``\\``, ``\\u20``, ``&#3`` or ``%2``
        still counts.
        """
        if self._sorted is None:
            self._sorted = sorted(s for s in self._plain if len(s) > self.MIN_CUT)
        if not self._sorted:
            return None
        for p in range(limit):
            if self._walk(before, p):
                return p
        return None

    def _walk(self, before: str, start: int) -> bool:
        """True when a secret longer than 3 characters starts at ``start`` and is cut at the end."""
        secrets = self._sorted
        assert secrets is not None
        stack = [(start, 0, len(secrets), 0)]  # (pos, lo, hi, k): secrets[lo:hi] share k characters
        while stack:
            pos, lo, hi, k = stack.pop()
            if len(secrets[lo]) == k:  # the one equal to the prefix sorts first: nothing after it
                lo += 1
                if lo >= hi:
                    continue
            if k >= self.MIN_CUT and (pos == len(before) or _PARTIAL_ESCAPE.fullmatch(before, pos)):
                return True
            if pos == len(before):
                continue
            t = before[pos]
            children = self._children(lo, hi, k)
            if t in "\\&%" or t.isspace():  # any character that is not a letter or digit may start here
                chars = [c for c in children if not (c.isascii() and c.isalnum())]
                if t.isspace():
                    chars = [c for c in chars if c.isspace()]
            else:
                chars = [t, " "] if t == "+" else [t, "\\"] if t == "/" else [t]
            for c in chars:
                node = children.get(c)
                if node is not None:
                    match = _char_re(c).match(before, pos)
                    if match is not None:
                        stack.append((match.end(), *node, k + 1))
        return False

    def _children(self, lo: int, hi: int, k: int) -> dict[str, tuple[int, int]]:
        """The trie node of ``_sorted[lo:hi]`` (all longer than ``k``): next character -> its range."""
        node = self._nodes.get((lo, hi, k))
        if node is None:
            secrets = self._sorted
            assert secrets is not None
            node, i = {}, lo
            while i < hi:
                c = secrets[i][k]
                end = bisect.bisect_right(secrets, c, i, hi, key=lambda s: s[k])
                node[c], i = (i, end), end
            if len(self._nodes) >= 100_000:
                self._nodes.clear()
            self._nodes[(lo, hi, k)] = node
        return node

    def deep(self, value: Any) -> Any:
        """Scrub every string inside a JSON-like value."""
        if not self._plain:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(v) for v in value]
        return value


_ALNUM_RUN = re.compile(r"[A-Za-z0-9]+")


def _in_order(parts: list[str], text: str) -> bool:
    """True when ``text`` holds each of ``parts``, one after the other (anything between them)."""
    pos = 0
    for part in parts:
        pos = text.find(part, pos)
        if pos < 0:
            return False
        pos += len(part)
    return True


@functools.lru_cache(maxsize=4096)
def _char_re(c: str) -> re.Pattern[str]:
    return re.compile(_char_forms(c))


# The start of an escape sequence that a cut left unfinished.
_PARTIAL_ESCAPE = re.compile(r"\\+(?:[uUxX]\{?)?[0-9A-Fa-f]{0,6}|&#?[0-9A-Za-z]*|%[0-9A-Fa-f]?")
# Python/JSON/JS short escapes of control characters.
_NAMED_ESCAPES = {"\n": "n", "\t": "t", "\r": "r", "\b": "b", "\f": "f", "\v": "v", "\0": "0"}


def _char_forms(c: str) -> str:
    """A regex matching one character of a secret in every form an escaping can give it.

    Letters and digits match themselves; any other character also matches: itself after 1-4
    backslashes (JSON, JS, Python, CSS, and those escaped again), a ``\\uXXXX``/``\\u{X}``/
    ``\\xXX``/CSS ``\\X `` hex escape, an HTML entity (named, decimal, hex), its URL encoding, and:
    whitespace any run of whitespace, ``\\`` a ``/`` (a browser's URL), a space ``+``.
    """
    if c.isalnum() and c.isascii():
        return re.escape(c)
    code = ord(c)
    hex_ = f"0*{code:x}"
    alternatives = [
        rf"\\{{1,4}}(?i:u{hex_}|u\{{{hex_}\}}|x{hex_}|{hex_} ?)",
        rf"&#0*{code};",
        rf"(?i:&#x{hex_};)",
        "(?i:" + "".join(f"%{b:02x}" for b in c.encode()) + ")",
    ]
    if code > 0xFFFF:  # JSON writes it as a surrogate pair
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        alternatives.append(rf"\\{{1,4}}(?i:u{high:x}\\{{1,4}}u{low:x})")
    name = html.entities.codepoint2name.get(code)
    if name:
        alternatives.append(f"&{name};")
    if c == "'":
        alternatives.append("&apos;")
    if c in _NAMED_ESCAPES:
        alternatives.append(r"\\{1,4}" + _NAMED_ESCAPES[c])
    if c.isspace():
        alternatives.append(r"\s+")
    if c == " ":
        alternatives.append(r"\+")
    if c == "\\":
        alternatives.append("/")
    # last: a walk over a cut text (Scrubber._escaped_prefix_start) takes the first that matches,
    # and "&" alone must not win over "&amp;"
    alternatives.append(r"\\{0,4}" + re.escape(c))
    return "(?:" + "|".join(alternatives) + ")"
