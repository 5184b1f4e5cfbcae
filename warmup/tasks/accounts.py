"""Accounts: from ``[[accounts]]`` tables or an accounts file (CSV or JSON lines)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from warmup.errors import UsageError
from warmup.tasks.common import (
    ACCOUNT_KEYS,
    SAFE_ID,
    SAFE_ID_TEXT,
    VAR_NAME,
    _describe,
    _get,
    _var_value,
    read_text,
)
from warmup.tasks.identity import IDENTITY_KEYS, check_identity, identity_from_columns


@dataclass(frozen=True)
class Account:
    id: str
    vars: dict[str, str]
    storage_state: str | None  # as written (may hold references); relative to the task file
    source: str  # where it was defined, for messages: "accounts[2]" or "accounts.csv line 4"
    base_url: str | None = None  # as written; overrides the task's
    identity: dict[str, Any] = field(default_factory=dict)  # browser identity as written (tasks.identity)



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
    known = ACCOUNT_KEYS | IDENTITY_KEYS
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    account_id = _check_account_id(raw.get("id"), where)
    where = f"{where} ({account_id})"
    raw_vars = _get(raw, "vars", dict, where, default={})
    storage_state = _get(raw, "storage_state", str, where, default=None)
    base_url = _get(raw, "base_url", str, where, default=None) or None
    identity = check_identity(raw, where)
    return Account(account_id, _account_vars(raw_vars, where), storage_state, source, base_url, identity)


def _load_accounts_file(path: Path, task_where: str) -> list[Account]:
    where = f"{task_where}: accounts_file {path}"
    text = read_text(path, where, encoding="utf-8-sig")
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
        base_url = row.pop("base_url", None) or None
        identity = check_identity(identity_from_columns(row, f"{where}: line {reader.line_num}"),
                                  f"{where}: line {reader.line_num} ({account_id})")
        values = {k: v for k, v in row.items() if v is not None}
        accounts.append(
            Account(account_id, _account_vars(values, f"{where}: line {reader.line_num}"), storage_state, line_where,
                    base_url, identity)
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
        base_url = obj.pop("base_url", None) or None
        if base_url is not None and not isinstance(base_url, str):
            raise UsageError(f"{line_where}: base_url must be a string")
        identity = check_identity({k: obj.pop(k) for k in IDENTITY_KEYS & set(obj)}, f"{line_where} ({account_id})")
        nested = obj.pop("vars", {})
        if not isinstance(nested, dict):
            raise UsageError(f"{line_where}: vars must be an object")
        values = {**obj, **nested}
        accounts.append(
            Account(account_id, _account_vars(values, line_where), storage_state, f"{name} line {number}", base_url,
                    identity)
        )
    return accounts
