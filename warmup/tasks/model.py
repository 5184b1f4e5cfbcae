"""The loaded task: accounts, steps, variables; rendering of ``${...}`` and what is secret."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from warmup.errors import UsageError
from warmup.tasks.accounts import Account
from warmup.tasks.actions import ACTIONS
from warmup.tasks.common import DEFAULT_TRACE, REDACTED, REFERENCE, SECRET_VAR, SHORT_SECRET, references
from warmup.tasks.schedule import Schedule
from warmup.tasks.scrubber import Scrubber
from warmup.tasks.steps import Step


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
    base_url: str | None = None  # as written; relative URLs of steps resolve against it (an account's wins)
    identity: dict[str, Any] = field(default_factory=dict)  # task-wide browser identity (tasks.identity)
    trace: str = DEFAULT_TRACE  # "off" | "on-failure" | "on": a Playwright trace per attempt
    script: str | None = None  # "package.module:function" in place of steps
    schedule: Schedule | None = None  # when `warmup serve` starts it on its own (not secret: recorded)

    # -- variables -----------------------------------------------------------------------------
    def render(self, template: str, account: Account, *, env: Mapping[str, str] | None = None,
               page: Mapping[str, str] | None = None) -> str:
        """``template`` with every reference filled in for ``account``; ${env.*} read now.

        ``page`` holds the values extracted so far in the account's attempt (``${page.NAME}``);
        a name not in it raises UsageError (the step that extracts it was skipped or failed).
        """
        return _render(template, account, os.environ if env is None else env, where="", task_vars=self.vars,
                       page=page)

    def step_value(self, step: Step, key: str, account: Account, page: Mapping[str, str] | None = None) -> Any:
        """A step's field for ``account``: templated strings rendered, other values as written."""
        value = step.args.get(key)
        if step.action == "expect_text" and key == "":
            return {k: self.render(v, account, page=page) for k, v in value.items()}
        if step.action in ACTIONS and key in ACTIONS[step.action].templated and isinstance(value, str):
            rendered = self.render(value, account, page=page)
            return self.url(rendered, account) if step.action == "goto" and key == "" else rendered
        return value

    def base_url_for(self, account: Account) -> str | None:
        """The account's base URL (its own, else the task's), rendered; None when neither sets one."""
        template = account.base_url or self.base_url
        return self.render(template, account) if template else None

    def url(self, value: str, account: Account) -> str:
        """A step's URL (already rendered) made absolute against the account's base URL.

        Standard URL resolution, as a browser and Playwright's own ``base_url`` do it: ``/x`` is
        from the site's root, ``x`` from the base's folder (so give a base ending in ``/``).
        """
        base = self.base_url_for(account)
        return urljoin(base, value) if base else value

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
                sources.append((f"the variable {name!r} of {account.source}", self._rendered_var(account, name, env)))
        return [(label, value) for label, value in sources if value]

    def _rendered_var(self, account: Account, name: str, env: Mapping[str, str]) -> str:
        """A credential variable as steps see it (``${vars.X}`` and ``${env.X}`` filled in): what to hide."""
        value = account.vars[name]
        if "${" not in value:
            return value
        try:
            return _render(value, account, env, where="", task_vars=self.vars)
        except UsageError:  # (an unset ${env.*}: the loader says so; nothing rendered to hide)
            return value

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
            "base_url": self.base_url,
            **self.identity,
            "trace": self.trace,
            "script": self.script,
            **(self.schedule.record() if self.schedule else {}),  # (absent without one: older records unchanged)
            "accounts": [
                {
                    "id": a.id,
                    "vars": {k: (REDACTED if k in _secret_literal_names(a) else v) for k, v in a.vars.items()},
                    "storage_state": a.storage_state,
                    **({"base_url": a.base_url} if a.base_url else {}),
                    **a.identity,
                }
                for a in self.accounts
            ],
            "steps": self.raw_steps(),
        }

    def raw_steps(self) -> list[dict[str, Any]]:
        """The ``steps`` list as written: a group's table once, in its place (not its inner steps)."""
        return [
            s.raw if s.group is None else s.group.raw
            for s in self.steps
            if s.group is None or s.index == s.group.first
        ]


def _secret_literal_names(account: Account) -> set[str]:
    return {k for k, v in account.vars.items() if SECRET_VAR.search(k) and not _only_env_refs(v)}


def _only_env_refs(value: str) -> bool:
    """True when a credential-named var is just ``${env.X}`` references (nothing literal to hide)."""
    refs = references(value)
    return REFERENCE.sub("", value) == "" and bool(refs) and all(r.startswith("env.") for r in refs)



def _render(template: str, account: Account, env: Mapping[str, str], *, where: str, depth: int = 0,
            task_vars: Mapping[str, str], page: Mapping[str, str] | None = None) -> str:
    """Fill every reference. ``page``: the values extracted so far (``${page.NAME}``); None where
    page values cannot be used (account variables, base URL, identity, storage_state)."""
    def fill(match: re.Match[str]) -> str:
        ref = match.group(1)
        scope, _, name = ref.partition(".")
        if scope == "page" and page is not None and depth == 0:
            if name not in page:
                raise UsageError(f"{where}${{{ref}}}: no value extracted as {name!r} yet in this attempt "
                                 "(the step that extracts it was skipped or failed)")
            return page[name]
        if scope == "page":
            raise UsageError(f"{where}${{{ref}}}: page values can be used only in the fields of steps")
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
