"""The task format's shared vocabulary: names, limits, and the small checks every part uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from warmup.errors import UsageError

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
    "base_url",
    "trace",
    "script",
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
    # a schedule for `warmup serve` (warmup.serve.schedules): schedule, then the three that need it
    "schedule",
    "timezone",
    "jitter_s",
    "catch_up",
}
SCHEDULE_OPTIONS = ("timezone", "jitter_s", "catch_up")  # keys refused without a schedule
ACCOUNT_KEYS = {"id", "vars", "storage_state", "base_url"}
TRACE_MODES = ("off", "on-failure", "on")
DEFAULT_TRACE = "on-failure"


def read_text(path: Path, where: str, *, encoding: str = "utf-8") -> str:
    """A file the task names, as text; UsageError with one line (``where``) when it cannot be read."""
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read it ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


def _check_ms(value: int, key: str, where: str) -> int:
    """A timeout Playwright takes as it is: 1 to 2^31-1 ms (Node clamps a larger one to 1 ms)."""
    if not 1 <= value <= MAX_MS:
        raise UsageError(f"{where}: {key} must be from 1 to {MAX_MS} ms (about 24 days), not {value}")
    return value



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




def references(template: str) -> list[str]:
    return REFERENCE.findall(template)
