"""Task files: load a TOML task (plus its optional accounts file), check every field, fill variables.

A task is what ``warmup run`` executes: a list of accounts and a list of steps that each account goes
through in its own browser context. ``docs/tasks.md`` documents the format; this module is its
reference implementation. Everything that can be checked before a browser starts is checked here,
so a wrong file costs one clear line (``UsageError``, exit 2) and appends nothing to the log:

- TOML syntax, unknown keys, missing or mistyped fields, unknown actions;
- account ids (a safe set of characters: they name artifact folders) and duplicates;
- every ``${...}`` reference of every step, for every account: ``${account.id}``,
  ``${account.<var>}`` (defined for that account) and ``${env.NAME}`` (set in the environment).

Secrets. ``${env.NAME}`` values are looked up only when a step runs (``Task.render``), and every
text the runner writes passes through ``Task.scrub``, which replaces each secret value with
``***``. The secrets are: the value of every environment variable the task refers to, and the
literal value of every account variable whose name looks like a credential (``password``,
``token``...). ``Task.record()`` is the definition as written, with ``${env.*}`` kept literally and
credential-named literals replaced by ``***``: it goes into ``run_started`` so a run can be
understood and resumed later without the file, and it never holds a resolved secret.

Ids, file names and the record are structural: the runner writes them unscrubbed (``***`` in an
id would name an account that does not exist). So a task whose secret value appears in an id or a
file name, or (4 characters or more) in another string of its record, is refused at load
(``_check_secrets_not_structural``), naming the variable, never the value.
"""

from __future__ import annotations

import bisect
import csv
import functools
import html.entities
import io
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

import orjson

from warmup.errors import UsageError

# \A...\Z, never ^...$: ``$`` also matches before a trailing newline, so "alice\n" would pass.
SAFE_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
SAFE_ID_TEXT = "1-64 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"
VAR_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
ENV_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
REFERENCE = re.compile(r"\$\{([^}]*)\}")
# Account variables with one of these in their name hold credentials: their literal values are
# secrets (scrubbed everywhere, recorded as ***). Better: put them in ${env.*}.
SECRET_VAR = re.compile(r"pass|secret|token|cookie|credential|api_?key|otp", re.IGNORECASE)
REDACTED = "***"
# Screenshot names the runner uses for its own files: failure-N(.thumb), trace-N, NAME-attemptN.
RESERVED_SHOT = re.compile(r"(?i)\A(?:failure|trace)-|-attempt[0-9]+\Z")
# A secret this short is likely to occur by chance in ordinary text, which the scrubber then hides.
SHORT_SECRET = 4

DEFAULT_STEP_TIMEOUT_MS = 10_000
# Playwright (Node) takes a timeout up to 2^31-1 ms (24.8 days); above that Node clamps it to 1 ms
# with a warning. Waits and pauses are held to the same bound.
MAX_MS = 2**31 - 1
# How deeply a task file's values may nest: real tasks nest 3 levels (steps -> step -> expect_text).
MAX_DEPTH = 32
DEFAULT_ACCOUNT_TIMEOUT_S = 120.0
DEFAULT_CONCURRENCY = 4
DEFAULT_SCROLL_PAUSE_MS = 250

TASK_KEYS = {
    "vars",
    "id",
    "name",
    "concurrency",
    "account_timeout_s",
    "retries",
    "timeout_ms",
    "storage_state",
    "accounts_file",
    "accounts",
    "steps",
}
ACCOUNT_KEYS = {"id", "vars", "storage_state"}
COMMON_STEP_KEYS = {"timeout_ms": int, "optional": bool}


@dataclass(frozen=True)
class ActionSpec:
    """One action: the type of its main value, its other fields (name -> (type, required))."""

    value: type | tuple[type, ...]
    extras: dict[str, tuple[type, bool]] = field(default_factory=dict)
    templated: tuple[str, ...] = ()  # which fields may hold ${...} references ("" is the main value)
    what: str = ""  # the main value in words, for messages and docs


ACTIONS: dict[str, ActionSpec] = {
    "goto": ActionSpec(str, templated=("",), what="a URL"),
    "click": ActionSpec(str, templated=("",), what="a selector"),
    "fill": ActionSpec(str, {"value": (str, True)}, templated=("", "value"), what="a selector"),
    "press": ActionSpec(str, {"selector": (str, False)}, templated=("", "selector"), what="a key name"),
    "hover": ActionSpec(str, templated=("",), what="a selector"),
    "scroll": ActionSpec(int, {"pause_ms": (int, False)}, what="how many times"),
    "wait_ms": ActionSpec(int, what="milliseconds"),
    "wait_for": ActionSpec(str, templated=("",), what="a selector"),
    "expect_title": ActionSpec(str, templated=("",), what="text the title contains"),
    "expect_text": ActionSpec(dict, templated=("selector", "text"), what="{ selector, text }"),
    "screenshot": ActionSpec(str, templated=("",), what="a name"),
}


@dataclass(frozen=True)
class Step:
    """One step of a task: ``args`` keeps the values as written (references unresolved)."""

    index: int  # 0-based position in the task's steps
    action: str
    args: dict[str, Any]  # "" -> the main value, plus the action's extra fields
    timeout_ms: int
    optional: bool
    raw: dict[str, Any]  # the step table exactly as written, for the run's record

    @property
    def label(self) -> str:
        return f"step {self.index + 1} ({self.action})"


@dataclass(frozen=True)
class Account:
    id: str
    vars: dict[str, str]
    storage_state: str | None  # as written (may hold references); relative to the task file
    source: str  # where it was defined, for messages: "accounts[2]" or "accounts.csv line 4"


@dataclass
class Task:
    id: str
    name: str
    path: Path
    concurrency: int
    account_timeout_s: float
    retries: int
    timeout_ms: int
    accounts: list[Account]
    steps: list[Step]
    storage_state: str | None = None  # task-wide default for accounts without their own
    accounts_file: str | None = None
    env_names: frozenset[str] = frozenset()
    vars: dict[str, str] = field(default_factory=dict)  # [vars]: plain text, never secret (${vars.NAME})

    # -- variables -----------------------------------------------------------------------------
    def render(self, template: str, account: Account, *, env: Mapping[str, str] | None = None) -> str:
        """``template`` with every reference filled in for ``account``; ${env.*} read now."""
        return _render(template, account, os.environ if env is None else env, where="", task_vars=self.vars)

    def step_value(self, step: Step, key: str, account: Account) -> Any:
        """A step's field for ``account``: templated strings rendered, other values as written."""
        value = step.args.get(key)
        if step.action == "expect_text" and key == "":
            return {k: self.render(v, account) for k, v in value.items()}
        if key in ACTIONS[step.action].templated and isinstance(value, str):
            return self.render(value, account)
        return value

    def storage_state_path(self, account: Account) -> Path | None:
        template = account.storage_state or self.storage_state
        if not template:
            return None
        return (self.path.parent / self.render(template, account)).resolve()

    # -- secrets -------------------------------------------------------------------------------
    def secret_sources(self, env: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
        """Each secret value with the variable it comes from, for messages that must not show it."""
        env = os.environ if env is None else env
        sources = [(f"${{env.{name}}}", env.get(name, "")) for name in sorted(self.env_names)]
        for account in self.accounts:
            for name in sorted(_secret_literal_names(account)):
                # by where it was defined, not by id: the id may hold the value
                sources.append((f"the variable {name!r} of {account.source}", account.vars[name]))
        return [(label, value) for label, value in sources if value]

    def short_secret_warning(self, env: Mapping[str, str] | None = None) -> str | None:
        """One line naming the secrets shorter than 4 characters (never their values), or None."""
        labels = sorted({label for label, value in self.secret_sources(env) if len(value) < SHORT_SECRET})
        if not labels:
            return None
        return (
            f"warning: {', '.join(labels)} {'is' if len(labels) == 1 else 'are'} shorter than {SHORT_SECRET} "
            "characters: every occurrence of such a value in error texts and URLs becomes ***, "
            "even where it is not the secret, and it may appear unscrubbed in the task's definition "
            "recorded in the log (a URL or a step value that happens to contain it)"
        )

    def secret_values(self) -> list[str]:
        """The values to hide: referenced environment variables and credential-named literals
        (``secret_sources``, the one definition of what is a secret), longest first."""
        return sorted({value for _, value in self.secret_sources()}, key=len, reverse=True)

    def scrubber(self) -> Scrubber:
        return Scrubber(self.secret_values())

    # -- the record that goes into run_started ------------------------------------------------
    def record(self) -> dict[str, Any]:
        """The definition with secrets unresolved: enough to understand or resume the run later."""
        return {
            "id": self.id,
            "name": self.name,
            "source": str(self.path),
            "folder": str(self.path.parent.resolve()),  # relative paths resolve from here on a resume
            "concurrency": self.concurrency,
            "account_timeout_s": self.account_timeout_s,
            "retries": self.retries,
            "timeout_ms": self.timeout_ms,
            "storage_state": self.storage_state,
            "accounts_file": self.accounts_file,
            "vars": self.vars,
            "accounts": [
                {
                    "id": a.id,
                    "vars": {k: (REDACTED if k in _secret_literal_names(a) else v) for k, v in a.vars.items()},
                    "storage_state": a.storage_state,
                }
                for a in self.accounts
            ],
            "steps": [s.raw for s in self.steps],
        }


def _secret_literal_names(account: Account) -> set[str]:
    return {k for k, v in account.vars.items() if SECRET_VAR.search(k) and not _only_env_refs(v)}


def _only_env_refs(value: str) -> bool:
    """True when a credential-named var is just ``${env.X}`` references (nothing literal to hide)."""
    refs = references(value)
    return REFERENCE.sub("", value) == "" and bool(refs) and all(r.startswith("env.") for r in refs)


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


# -- rendering ------------------------------------------------------------------------------------
def references(template: str) -> list[str]:
    return REFERENCE.findall(template)


def _render(template: str, account: Account, env: Mapping[str, str], *, where: str, depth: int = 0,
            task_vars: Mapping[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        ref = match.group(1)
        scope, _, name = ref.partition(".")
        if scope == "account" and name == "id":
            return account.id
        if scope == "vars":
            if name not in task_vars:
                raise UsageError(f"{where}${{{ref}}}: no variable {name!r} in the task's [vars]")
            return task_vars[name]
        if scope == "account" and name in account.vars:
            if depth > 0:
                raise UsageError(f"{where}${{{ref}}}: an account variable cannot refer to another one")
            return _render(account.vars[name], account, env, where=where, depth=depth + 1, task_vars=task_vars)
        if scope == "account":
            raise UsageError(f"{where}${{{ref}}} is not defined for account {account.id!r}")
        if scope == "env":
            if name not in env:
                raise UsageError(f"{where}${{{ref}}}: environment variable {name} is not set")
            return env[name]
        raise UsageError(
            f"{where}unknown variable ${{{ref}}} (use ${{account.id}}, ${{account.NAME}}, ${{vars.NAME}} "
            "or ${env.NAME})"
        )

    return REFERENCE.sub(fill, template)


# -- loading --------------------------------------------------------------------------------------
def load_task(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Task:
    """Read and check a task file; raises UsageError with one line naming the file and the problem."""
    path = Path(path)
    env = os.environ if env is None else env
    where = f"task file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read it ({_reason(exc)})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise UsageError(f"{where}: values nest too deeply (at most {MAX_DEPTH} levels)") from None
    return _build_task(doc, path, env)


def task_from_record(
    record: dict[str, Any], account_ids: list[str], *, where: str, env: Mapping[str, str] | None = None
) -> Task:
    """Rebuild a task from a ``run_started.task`` record, keeping only ``account_ids`` (in record order).

    Checked like a file (every reference, for every account kept), with ``${env.*}`` read from
    ``env`` now. A credential-named literal recorded as ``***`` cannot be resumed: it never was in
    the log, and running with ``***`` as a password would be wrong.
    """
    env = os.environ if env is None else env
    if not isinstance(record, dict):
        raise UsageError(f"{where}: not a task record")
    keep = set(account_ids)
    accounts = []
    for raw in record.get("accounts") or []:
        if not isinstance(raw, dict) or raw.get("id") not in keep:
            continue
        account = {k: v for k, v in raw.items() if v is not None}
        for name, value in (account.get("vars") or {}).items():
            if value == REDACTED and SECRET_VAR.search(name):
                raise UsageError(
                    f"{where}: account {raw['id']!r}, variable {name!r} was a literal credential and was not "
                    "recorded; put it in ${env.NAME} and run the task file again"
                )
        accounts.append(account)
    doc = {k: v for k, v in record.items() if k in TASK_KEYS and v is not None and k != "accounts_file"}
    doc["accounts"] = accounts
    folder = Path(str(record.get("folder") or Path(str(record.get("source") or "task.toml")).parent))
    path = folder / Path(str(record.get("source") or "task.toml")).name
    return _build_task(doc, path, env, where=where)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


def _check_ms(value: int, key: str, where: str) -> int:
    """A timeout Playwright takes as it is: 1 to 2^31-1 ms (Node clamps a larger one to 1 ms)."""
    if not 1 <= value <= MAX_MS:
        raise UsageError(f"{where}: {key} must be from 1 to {MAX_MS} ms (about 24 days), not {value}")
    return value


def _check_numbers(value: Any, where: str, path: str = "", depth: int = 0) -> None:
    """Every number fits the log (a signed 64-bit integer) and is finite: one line naming the key.

    Values nest at most ``MAX_DEPTH`` levels, so nothing later recurses deeply over them (a record
    read back from a log goes through here too).
    """
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        raise UsageError(f"{where}: {path or 'the file'} nests more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_numbers(item, where, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_numbers(item, where, f"{path}[{i}]", depth + 1)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise UsageError(f"{where}: {path} = {value} is too large a number")
    elif isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{where}: {path} must be a finite number, not {value}")


def _build_task(doc: dict[str, Any], path: Path, env: Mapping[str, str], *, where: str | None = None) -> Task:
    where = where or f"task file {path}"
    _check_numbers(doc, where)
    unknown = sorted(set(doc) - TASK_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(TASK_KEYS))})")

    task_id = _get(doc, "id", str, where, default=path.stem)
    if not SAFE_ID.match(task_id):
        raise UsageError(f"{where}: id {task_id!r} is not allowed ({SAFE_ID_TEXT})")
    name = _get(doc, "name", str, where, default=task_id)
    concurrency = _get(doc, "concurrency", int, where, default=DEFAULT_CONCURRENCY)
    if concurrency < 1:
        raise UsageError(f"{where}: concurrency must be at least 1, not {concurrency}")
    account_timeout_s = float(_get(doc, "account_timeout_s", (int, float), where, default=DEFAULT_ACCOUNT_TIMEOUT_S))
    if account_timeout_s <= 0:
        raise UsageError(f"{where}: account_timeout_s must be more than 0")
    retries = _get(doc, "retries", int, where, default=0)
    if retries < 0:
        raise UsageError(f"{where}: retries must be 0 or more, not {retries}")
    timeout_ms = _check_ms(_get(doc, "timeout_ms", int, where, default=DEFAULT_STEP_TIMEOUT_MS), "timeout_ms", where)
    storage_state = _get(doc, "storage_state", str, where, default=None)
    accounts_file = _get(doc, "accounts_file", str, where, default=None)
    task_vars = _task_vars(_get(doc, "vars", dict, where, default={}), where)

    accounts: list[Account] = []
    raw_accounts = _get(doc, "accounts", list, where, default=[])
    for i, raw in enumerate(raw_accounts):
        accounts.append(_account_from_table(raw, f"{where}: accounts[{i}]", f"accounts[{i}]"))
    if accounts_file is not None:
        accounts.extend(_load_accounts_file(path.parent / accounts_file, where))
    if not accounts:
        raise UsageError(f"{where}: no accounts (add [[accounts]] tables or an accounts_file)")
    seen: dict[str, str] = {}
    for account in accounts:
        if account.id in seen:
            raise UsageError(
                f"{where}: duplicate account id {account.id!r} ({seen[account.id]} and {account.source})"
            )
        seen[account.id] = account.source

    raw_steps = _get(doc, "steps", list, where, default=None)
    if not raw_steps:
        raise UsageError(f"{where}: no steps (add at least one [[steps]] table)")
    steps = [_step_from_table(raw, i, timeout_ms, where) for i, raw in enumerate(raw_steps)]

    task = Task(
        id=task_id,
        name=name,
        path=path,
        concurrency=concurrency,
        account_timeout_s=account_timeout_s,
        retries=retries,
        timeout_ms=timeout_ms,
        accounts=accounts,
        steps=steps,
        storage_state=storage_state,
        accounts_file=accounts_file,
        vars=task_vars,
    )
    rendered_names: list[tuple[str, str]] = []
    task.env_names = frozenset(_check_references(task, env, where, rendered_names))
    _check_secrets_not_structural(task, env, where, rendered_names)
    return task


def _check_secrets_not_structural(
    task: Task, env: Mapping[str, str], where: str, rendered_names: list[tuple[str, str]]
) -> None:
    """No secret value occurs in what the log keeps as it is: ids, file names, the task's record.

    The recorder scrubs free text only (``warmup.runner.recorder``): an id or a path with ``***``
    in it would name a folder, a state file or an account that does not exist, and a resume could
    not match it. So a task is refused, naming the variable, never the value:

    - whatever the secret's length, when it appears inside an id or a file name: the task's id,
      an account id, the task file's path, ``accounts_file``, a ``storage_state`` (as written and as
      rendered for each account) or a screenshot name (as written and as rendered: the rendered
      ones are ``rendered_names``, from ``_check_references``);
    - when a secret of ``SHORT_SECRET`` characters or more appears in any other string of the
      record written unresolved into ``run_started`` (the name, step values, plain variables): it
      was written literally into the task and would reach the log raw. A shorter one is likely to
      occur there by chance (``"com"`` in a URL): ``Task.short_secret_warning`` says it may.

    Keys are never checked: they are names the task's author chose (``password = "word"``).
    Near-linear in the size of the task: each secret is looked up in an index of the 4-character
    pieces of the strings (``_Haystack``), and only a place that holds it is searched to name it.
    """
    sources = task.secret_sources(env)
    if not sources:
        return
    names: list[tuple[str, str]] = []  # (where, text): ids and file names
    others: list[tuple[str, str]] = []  # (where, text): every other string of the record
    _record_strings(task.record(), "", names, others)
    names += rendered_names
    long_sources = [(label, value) for label, value in sources if len(value) >= SHORT_SECRET]
    for places, checked in ((names, sources), (others, long_sources)):
        haystack = _Haystack([text for _, text in places])
        found = [(label, value) for label, value in checked if haystack.contains(value)]
        if not found:
            continue
        # the first place that holds a secret is named (ids before the rest of the record)
        place, label = next((place, label) for place, text in places for label, value in found if value in text)
        raise UsageError(
            f"{where}: the value of {label} appears in {place}, which the log keeps as it is "
            "(ids, file names and the task's definition are never scrubbed); change one of them"
        )


class _Haystack:
    """Many strings, asked whether one of them contains a needle: in about the needle's length.

    Every 4-character piece of every string goes into a set: a needle of 4 or more characters
    with a piece that is not in the set occurs in none of them (the usual answer, found at once);
    otherwise, and for a shorter needle, the strings are searched.
    """

    GRAM = 4

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.grams = {text[i : i + self.GRAM] for text in texts for i in range(len(text) - self.GRAM + 1)}
        self._joined: str | None = None

    def contains(self, needle: str) -> bool:
        n = self.GRAM
        if len(needle) >= n and any(needle[i : i + n] not in self.grams for i in range(0, len(needle) - n + 1)):
            return False
        if self._joined is None:
            self._joined = "\0".join(self.texts)
        if needle not in self._joined:
            return False
        return "\0" not in needle or any(needle in text for text in self.texts)


def _record_strings(value: Any, path: str, names: list[tuple[str, str]], others: list[tuple[str, str]]) -> None:
    """Every string value of a task record (never a key), with where it is, e.g. ``steps[2].fill``.

    Ids and file names go to ``names``, the other strings to ``others``. A ``${...}`` reference is
    cut out (``"${account.password}"`` names a variable, it holds no value); what it renders to is
    checked where it matters, in rendered file names.
    """
    if isinstance(value, str):
        (names if _NAME_PATH.fullmatch(path) else others).append((path or "the task", REFERENCE.sub("\0", value)))
    elif isinstance(value, dict):
        for key, item in value.items():
            _record_strings(item, f"{path}.{key}" if path else str(key), names, others)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _record_strings(item, f"{path}[{i}]", names, others)


# Where a task record holds an id or a file name (see Task.record).
_NAME_PATH = re.compile(
    r"id|source|folder|storage_state|accounts_file|accounts\[[0-9]+\]\.(?:id|storage_state)|steps\[[0-9]+\]\.screenshot"
)


def _type_name(kinds: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list",
             dict: "a table"}
    if isinstance(kinds, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kinds if k is not float or int not in kinds)
    return names.get(kinds, kinds.__name__)


def _is(value: Any, kinds: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # TOML true is not an integer here
        return kinds is bool or (isinstance(kinds, tuple) and bool in kinds)
    return isinstance(value, kinds)


def _get(table: dict[str, Any], key: str, kinds: type | tuple[type, ...], where: str, *, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if not _is(value, kinds):
        raise UsageError(f"{where}: {key} must be {_type_name(kinds)}, not {_describe(value)}")
    return value


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) < 40 else "a string"
    if isinstance(value, int | float):
        return repr(value)
    return _type_name(type(value))


def _var_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise UsageError(f"{where} must be a string or a number, not {_describe(value)}")


def _task_vars(raw: dict[str, Any], where: str) -> dict[str, str]:
    """``[vars]``: plain task variables (``${vars.NAME}``), recorded and shown as they are, never secret.

    So a value may not refer to anything (a ``${env.*}`` inside would put a secret where nothing
    hides it), and a credential-like name is refused: a password belongs in ``${env.NAME}``.
    """
    found: dict[str, str] = {}
    for name, value in raw.items():
        at = f"{where}: vars.{name}"
        if not VAR_NAME.match(name):
            raise UsageError(f"{where}: [vars] name {name!r} is not a variable name (letters, digits and _)")
        if SECRET_VAR.search(name):
            raise UsageError(f"{at}: task variables are never secret; put a credential in ${{env.NAME}}")
        text = _var_value(value, at)
        if references(text):
            raise UsageError(f"{at}: a task variable is plain text, it cannot use ${{...}} (write the value itself)")
        found[name] = text
    return found


def _check_account_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{where}: missing account id (field 'id')")
    if not SAFE_ID.match(value):
        raise UsageError(f"{where}: account id {value!r} is not allowed ({SAFE_ID_TEXT})")
    return value


def _account_vars(raw: dict[str, Any], where: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in raw.items():
        if not VAR_NAME.match(str(name)):
            raise UsageError(f"{where}: variable name {name!r} is not allowed (letters, digits and _)")
        if name == "id":
            raise UsageError(f"{where}: 'id' is not a variable name (${{account.id}} is the account's id)")
        result[name] = _var_value(value, f"{where}: variable {name!r}")
    return result


def _account_from_table(raw: Any, where: str, source: str) -> Account:
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: must be a table with an id, not {_describe(raw)}")
    unknown = sorted(set(raw) - ACCOUNT_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (known: id, vars, storage_state)")
    account_id = _check_account_id(raw.get("id"), where)
    where = f"{where} ({account_id})"
    raw_vars = _get(raw, "vars", dict, where, default={})
    storage_state = _get(raw, "storage_state", str, where, default=None)
    return Account(account_id, _account_vars(raw_vars, where), storage_state, source)


def _load_accounts_file(path: Path, task_where: str) -> list[Account]:
    where = f"{task_where}: accounts_file {path}"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read it ({_reason(exc)})") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _accounts_from_csv(text, path.name, where)
    if suffix in (".jsonl", ".ndjson"):
        return _accounts_from_jsonl(text, path.name, where)
    raise UsageError(f"{where}: unknown format (use a .csv or .jsonl file)")


def _accounts_from_csv(text: str, name: str, where: str) -> list[Account]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "id" not in reader.fieldnames:
        raise UsageError(f"{where}: the first line must name the columns, one of them 'id'")
    accounts = []
    for row in reader:
        line_where = f"{name} line {reader.line_num}"
        if None in row:
            raise UsageError(f"{where}: line {reader.line_num} has more fields than the header")
        account_id = _check_account_id(row.pop("id"), f"{where}: line {reader.line_num}")
        storage_state = row.pop("storage_state", None) or None
        values = {k: v for k, v in row.items() if v is not None}
        accounts.append(
            Account(account_id, _account_vars(values, f"{where}: line {reader.line_num}"), storage_state, line_where)
        )
    return accounts


def _accounts_from_jsonl(text: str, name: str, where: str) -> list[Account]:
    accounts = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        line_where = f"{where}: line {number}"
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"{line_where}: not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise UsageError(f"{line_where}: must be a JSON object with an 'id'")
        account_id = _check_account_id(obj.pop("id", None), line_where)
        storage_state = obj.pop("storage_state", None)
        if storage_state is not None and not isinstance(storage_state, str):
            raise UsageError(f"{line_where}: storage_state must be a string")
        nested = obj.pop("vars", {})
        if not isinstance(nested, dict):
            raise UsageError(f"{line_where}: vars must be an object")
        values = {**obj, **nested}
        accounts.append(Account(account_id, _account_vars(values, line_where), storage_state, f"{name} line {number}"))
    return accounts


def _step_from_table(raw: Any, index: int, default_timeout_ms: int, task_where: str) -> Step:
    where = f"{task_where}: step {index + 1}"
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: must be a table with one action, not {_describe(raw)}")
    actions = [k for k in raw if k in ACTIONS]
    if not actions:
        others = [k for k in raw if k not in COMMON_STEP_KEYS]
        if others:
            raise UsageError(f"{where}: unknown action {others[0]!r} (actions: {', '.join(ACTIONS)})")
        raise UsageError(f"{where}: no action (one of: {', '.join(ACTIONS)})")
    if len(actions) > 1:
        raise UsageError(f"{where}: one action per step, found {' and '.join(actions)}")
    action = actions[0]
    spec = ACTIONS[action]
    where = f"{where} ({action})"
    allowed = {action, *spec.extras, *COMMON_STEP_KEYS}
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise UsageError(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")

    value = raw[action]
    if not _is(value, spec.value):
        raise UsageError(f"{where}: {action} must be {spec.what} ({_type_name(spec.value)}), not {_describe(value)}")
    args: dict[str, Any] = {"": value}
    for extra, (kinds, required) in spec.extras.items():
        if extra not in raw:
            if required:
                raise UsageError(f"{where}: missing field {extra!r}")
            continue
        if not _is(raw[extra], kinds):
            raise UsageError(f"{where}: {extra} must be {_type_name(kinds)}, not {_describe(raw[extra])}")
        args[extra] = raw[extra]
    timeout_ms = _check_ms(_get(raw, "timeout_ms", int, where, default=default_timeout_ms), "timeout_ms", where)
    optional = _get(raw, "optional", bool, where, default=False)

    _check_action_values(action, args, where)
    return Step(index, action, args, timeout_ms, optional, dict(raw))


def _check_action_values(action: str, args: dict[str, Any], where: str) -> None:
    value = args[""]
    if action == "scroll":
        if value < 1:
            raise UsageError(f"{where}: scroll must be 1 or more times")
        pause_ms = args.get("pause_ms", 0)
        if not 0 <= pause_ms <= MAX_MS:
            raise UsageError(f"{where}: pause_ms must be from 0 to {MAX_MS}, not {pause_ms}")
    elif action == "wait_ms" and not 0 <= value <= MAX_MS:
        raise UsageError(f"{where}: wait_ms must be from 0 to {MAX_MS}, not {value}")
    elif action == "expect_text":
        unknown = sorted(set(value) - {"selector", "text"})
        if unknown:
            raise UsageError(f"{where}: unknown field {unknown[0]!r} in expect_text (use selector and text)")
        for key in ("selector", "text"):
            if key not in value:
                raise UsageError(f"{where}: expect_text needs {key!r}")
            if not isinstance(value[key], str):
                raise UsageError(f"{where}: expect_text.{key} must be a string, not {_describe(value[key])}")
    elif action in ("goto", "click", "fill", "hover", "wait_for", "press", "screenshot") and not value:
        raise UsageError(f"{where}: {action} must not be empty")
    if action == "screenshot":
        if any(ref.startswith("env.") for ref in references(value)):
            raise UsageError(f"{where}: a screenshot name cannot use ${{env.*}} (it would put a secret in a file name)")


def _templates(step: Step) -> list[str]:
    spec = ACTIONS[step.action]
    if step.action == "expect_text":
        return [step.args[""]["selector"], step.args[""]["text"]]
    return [step.args[k] for k in spec.templated if isinstance(step.args.get(k), str)]


def _check_references(
    task: Task, env: Mapping[str, str], where: str, rendered_names: list[tuple[str, str]]
) -> set[str]:
    """Render every template for every account now, so an undefined variable fails before any run.

    Returns the names of the environment variables the task refers to (their values are secrets).
    Each account's rendered storage_state and screenshot names go to ``rendered_names`` as
    (where, name), for ``_check_secrets_not_structural``.
    """
    env_names: set[str] = set()
    for account in task.accounts:
        for name, value in account.vars.items():
            for ref in references(value):
                if ref == "account.id":
                    continue
                if ref.startswith("vars."):
                    if ref[5:] not in task.vars:
                        raise UsageError(f"{where}: account {account.id!r}, variable {name!r}: ${{{ref}}}: "
                                         f"no variable {ref[5:]!r} in the task's [vars]")
                    continue
                if not ref.startswith("env."):
                    raise UsageError(
                        f"{where}: account {account.id!r}, variable {name!r}: only ${{account.id}}, "
                        f"${{vars.NAME}} and ${{env.NAME}} may be used inside a variable, not ${{{ref}}}"
                    )
                env_names.add(ref[4:])
        template = account.storage_state or task.storage_state
        if template:
            refs = references(template)
            if any(ref.startswith("env.") or (ref.startswith("account.") and _has_env(account, ref)) for ref in refs):
                raise UsageError(
                    f"{where}: account {account.id!r}: storage_state cannot use ${{env.*}} (a secret in a file name)"
                )
            rendered_names.append((
                f"the storage_state of account {account.id!r}",
                _render(template, account, env, where=f"{where}: account {account.id!r}: storage_state: ",
                        task_vars=task.vars),
            ))
        shots: dict[str, Step] = {}  # rendered screenshot name (casefolded) -> its step
        for step in task.steps:
            for template in _templates(step):
                rendered = _render(template, account, env, where=f"{where}: {step.label}: ", task_vars=task.vars)
                if step.action == "screenshot":
                    if any(ref.startswith("account.") and _has_env(account, ref) for ref in references(template)):
                        raise UsageError(
                            f"{where}: {step.label}: the screenshot name uses a variable that holds ${{env.*}}"
                        )
                    if any(ref.startswith("account.") and SECRET_VAR.search(ref[8:]) for ref in references(template)):
                        raise UsageError(
                            f"{where}: {step.label}: the screenshot name uses a credential variable "
                            "(it would put a secret in a file name)"
                        )
                    if not SAFE_ID.match(rendered):
                        raise UsageError(
                            f"{where}: {step.label}: screenshot name {rendered!r} for account {account.id!r} "
                            f"is not allowed ({SAFE_ID_TEXT})"
                        )
                    _check_screenshot_name(rendered, step, account, shots, where)
                    rendered_names.append((f"the screenshot name of {step.label} for account {account.id!r}", rendered))
                env_names.update(ref[4:] for ref in references(template) if ref.startswith("env."))
    return env_names


def _check_screenshot_name(name: str, step: Step, account: Account, shots: dict[str, Step], where: str) -> None:
    """One account's screenshot files never overwrite one another.

    Invariants: names the runner gives its own files (``failure-*``, ``trace-*``, and the
    ``-attemptN`` suffix of a retry's screenshots) are reserved; the names of one account's
    screenshot steps, rendered, differ, also in case (a case-insensitive filesystem would merge
    ``Shot.png`` and ``shot.png``). The runner also creates each file exclusively, as a last net.
    """
    if RESERVED_SHOT.search(name):
        raise UsageError(
            f"{where}: {step.label}: screenshot name {name!r} for account {account.id!r} is reserved "
            "(failure-*, trace-* and *-attemptN name the runner's own screenshots); choose another name"
        )
    key = name.casefold()
    if key in shots:
        raise UsageError(
            f"{where}: {shots[key].label} and {step.label} both name their screenshot {name!r} for account "
            f"{account.id!r}; give each its own name"
        )
    shots[key] = step


def _has_env(account: Account, ref: str) -> bool:
    value = account.vars.get(ref[8:], "")
    return any(r.startswith("env.") for r in references(value))
