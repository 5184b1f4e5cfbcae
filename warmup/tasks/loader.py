"""Task files: load a TOML task (plus its optional accounts file), check every field, fill variables.

A task is what ``warmup run`` executes: a list of accounts and a list of steps that each account goes
through in its own browser context. ``docs/tasks.md`` documents the format; this module is its
reference implementation. Everything that can be checked before a browser starts is checked here,
so a wrong file costs one clear line (``UsageError``, exit 2) and appends nothing to the log:

- TOML syntax, unknown keys, missing or mistyped fields, unknown actions;
- account ids (a safe set of characters: they name artifact folders) and duplicates;
- every ``${...}`` reference of every step, for every account: ``${account.id}``,
  ``${account.<var>}`` (defined for that account) and ``${env.NAME}`` (set in the environment);
  ``${page.NAME}`` only in a step after one that extracts ``NAME`` (a placeholder at load: its value
  comes from the page at run time);
- conditions, groups (one level), ``fail_if``, ``extract``; ``save_state`` only for an account with
  a ``storage_state``.

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

import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from warmup.errors import UsageError
from warmup.tasks.accounts import Account, _account_from_table, _load_accounts_file
from warmup.tasks.actions import check_upload_files
from warmup.tasks.common import (
    DEFAULT_ACCOUNT_TIMEOUT_S,
    DEFAULT_CONCURRENCY,
    DEFAULT_STEP_TIMEOUT_MS,
    DEFAULT_TRACE,
    MAX_DEPTH,
    REDACTED,
    REFERENCE,
    RESERVED_SHOT,
    SAFE_ID,
    SAFE_ID_TEXT,
    SCHEDULE_OPTIONS,
    SECRET_VAR,
    SHORT_SECRET,
    TASK_KEYS,
    TRACE_MODES,
    VAR_NAME,
    _check_ms,
    _get,
    _var_value,
    read_text,
    references,
)
from warmup.tasks.identity import IDENTITY_KEYS, check_identity, check_rendered, identity_templates, merge_identity
from warmup.tasks.model import Task, _render
from warmup.tasks.schedule import DEFAULT_TIMEZONE, Schedule
from warmup.tasks.script import resolve_script
from warmup.tasks.steps import SAVE_STATE, Step, _steps_from_list, _templates


# -- loading --------------------------------------------------------------------------------------
def load_task(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Task:
    """Read and check a task file; raises UsageError with one line naming the file and the problem."""
    path = Path(path)
    env = os.environ if env is None else env
    where = f"task file {path}"
    text = read_text(path, where)
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
    known = TASK_KEYS | IDENTITY_KEYS
    doc = {k: v for k, v in record.items() if k in known and v is not None and k != "accounts_file"}
    doc["accounts"] = accounts
    folder = Path(str(record.get("folder") or Path(str(record.get("source") or "task.toml")).parent))
    path = folder / Path(str(record.get("source") or "task.toml")).name
    return _build_task(doc, path, env, where=where)



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
    known = TASK_KEYS | IDENTITY_KEYS
    unknown = sorted(set(doc) - known)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(known))})")

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
    base_url = _get(doc, "base_url", str, where, default=None) or None
    identity = check_identity(doc, where)
    trace = _get(doc, "trace", str, where, default=DEFAULT_TRACE)
    if trace not in TRACE_MODES:
        raise UsageError(f"{where}: trace must be one of {', '.join(map(repr, TRACE_MODES))}, not {trace!r}")
    script = _get(doc, "script", str, where, default=None)
    schedule = _schedule(doc, where)

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
    if script is not None:
        if raw_steps:
            raise UsageError(f"{where}: give script or [[steps]], not both (a script's steps are its step() blocks)")
        resolve_script(script, path.parent, where)  # a bad reference fails here, before any browser starts
        raw_steps = []
    elif not raw_steps:
        raise UsageError(f"{where}: no steps (add at least one [[steps]] table, or script = \"module:function\")")
    steps = _steps_from_list(raw_steps, timeout_ms, where)
    check_upload_files(steps, path.parent, where)

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
        base_url=base_url,
        identity=identity,
        trace=trace,
        script=script,
        schedule=schedule,
    )
    rendered_names: list[tuple[str, str]] = []
    task.env_names = frozenset(_check_references(task, env, where, rendered_names))
    _check_secrets_not_structural(task, env, where, rendered_names)
    return task


def _mentions_secret(template: str, account: Account) -> bool:
    """Whether ``template`` may render to a secret: a ``${env.*}``, or an account variable that holds
    one or has a credential's name. A message then quotes the template, never what it renders to."""
    return any(
        ref.startswith("env.")
        or (ref.startswith("account.") and (_has_env(account, ref) or bool(SECRET_VAR.search(ref[8:]))))
        for ref in references(template)
    )


_SCHEME = re.compile(r"\A[A-Za-z][A-Za-z0-9+.-]*:")


def _absolute_url(url: str) -> bool:
    """An http(s) URL with a host, or a file: URL (what a base URL must be)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port out of range or not a number raises here)
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 address)
        return False
    return (parts.scheme in ("http", "https") and bool(parts.netloc)) or parts.scheme == "file"


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
    r"id|source|folder|storage_state|accounts_file|accounts\[[0-9]+\]\.(?:id|storage_state)"
    r"|steps\[[0-9]+\](?:\.steps\[[0-9]+\])?\.screenshot"
)



def _schedule(doc: dict[str, Any], where: str) -> Schedule | None:
    """``schedule`` (cron) with its ``timezone``, ``jitter_s`` and ``catch_up``; None without one.

    The three options alone are refused: they would silently do nothing. ``timezone`` is the zone
    the cron is read in, not the browser's (``timezone_id``, an identity key).
    """
    cron = _get(doc, "schedule", str, where, default=None)
    if cron is None:
        given = [key for key in SCHEDULE_OPTIONS if key in doc]
        if given:
            raise UsageError(f"{where}: {given[0]} is set but schedule is not ({', '.join(SCHEDULE_OPTIONS)} "
                             "go with a schedule = \"cron expression\")")
        return None
    try:
        return Schedule(
            cron=cron,
            timezone=_get(doc, "timezone", str, where, default=DEFAULT_TIMEZONE),
            jitter_s=_get(doc, "jitter_s", (int, float), where, default=0),
            catch_up=_get(doc, "catch_up", bool, where, default=True),
        )
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None


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
        base_template = account.base_url or task.base_url
        if base_template:
            base = _render(base_template, account, env, where=f"{where}: account {account.id!r}: base_url: ",
                           task_vars=task.vars)
            if not _absolute_url(base):
                shown = f"{base_template!r} (as rendered)" if _mentions_secret(base_template, account) else repr(base)
                raise UsageError(
                    f"{where}: account {account.id!r}: base_url {shown} is not an absolute URL "
                    "(write it as http://host/ or https://host/path/)"
                )
            env_names.update(ref[4:] for ref in references(base_template) if ref.startswith("env."))
        for key, template in identity_templates(merge_identity(task.identity, account.identity)):
            value = _render(template, account, env, where=f"{where}: account {account.id!r}: {key}: ",
                            task_vars=task.vars)
            check_rendered(key, value, f"{where}: account {account.id!r}",
                           template=template if _mentions_secret(template, account) else None)
            env_names.update(ref[4:] for ref in references(template) if ref.startswith("env."))
        shots: dict[str, Step] = {}  # rendered screenshot name (casefolded) -> its step
        extracted: dict[str, str] = {}  # ${page.NAME} -> a placeholder, once an earlier step extracts NAME
        for step in task.steps:
            if step.action == SAVE_STATE and not (account.storage_state or task.storage_state):
                raise UsageError(
                    f"{where}: {step.label}: account {account.id!r} has no storage_state to save to "
                    "(set storage_state for the task or the account)"
                )
            for template in _templates(step):
                _check_page_refs(template, step, extracted, where)
                rendered = _render(template, account, env, where=f"{where}: {step.label}: ", task_vars=task.vars,
                                   page=extracted)
                if (step.action == "goto" and template is step.args[""] and not base_template
                        and not template.startswith("${page.") and not _SCHEME.match(rendered)):
                    raise UsageError(
                        f"{where}: {step.label}: {template!r} is a relative URL, and account {account.id!r} has "
                        "no base_url to resolve it against (set base_url, or write the whole URL)"
                    )
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
            if step.extract is not None:
                extracted[step.extract.name] = f"page-{step.extract.name}"
    return env_names


def _check_page_refs(template: str, step: Step, extracted: Mapping[str, str], where: str) -> None:
    """``${page.NAME}`` only after a step that extracts NAME, and never in a file name."""
    for ref in references(template):
        if not ref.startswith("page."):
            continue
        if step.action == "screenshot":
            raise UsageError(f"{where}: {step.label}: a screenshot name cannot use ${{{ref}}} (text from the page "
                             "in a file name)")
        if ref[5:] not in extracted:
            raise UsageError(
                f"{where}: {step.label}: ${{{ref}}} is not extracted by an earlier step "
                f"(add extract = {{ selector = \"...\", as = \"{ref[5:]}\" }} to a step before it)"
            )


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
