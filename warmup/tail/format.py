"""One readable line per log line: time, run, account, type, and the fields that matter for the type.

Everything shown that came from the log is passed through ``escape()`` first: titles, URLs and error
messages come from web pages, and an escape sequence in them (ANSI colours, OSC window titles or
hyperlinks, cursor movement, bidi overrides) must never reach the user's terminal. The only escape
sequences in the output are the colours this module adds itself, and only when asked to.

A failed step is bold red ``FAILED``; a failed *optional* step (its account went on) is orange
``failed (optional)``, its error orange too, so a glance at a tail tells the two apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from warmup.events.envelope import InvalidEvent, validate
from warmup.safe_text import escape

MAX_TEXT = 300  # an error message longer than this is cut, with a note; --json shows it whole
MAX_RAW = 200  # how much of an invalid line is shown
OPTIONAL_FAILED = "failed (optional)"  # an optional step that failed: orange, never the bold red FAILED

def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (+{len(text) - limit} chars)"


class Style:
    """ANSI colours, or nothing. ``Style(False)`` returns text unchanged."""

    CODES = {"dim": "2", "bold": "1", "red": "31", "green": "32", "yellow": "33", "cyan": "36", "magenta": "35",
             "orange": "38;5;208"}

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles:
            return text
        codes = ";".join(self.CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


_STATUS_STYLE = {"COMPLETED": "green", "FAILED": "red", "CANCELLED": "yellow", "INTERRUPTED": "yellow"}
_TS = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d{1,3})?\d*Z$")


def _time(ts: object) -> str:
    m = _TS.match(ts) if isinstance(ts, str) else None
    if m:
        return f"{m.group(1)} {m.group(2)}{(m.group(3) or '.000').ljust(4, '0')}"
    return escape(ts)


def _duration(ms: float) -> str:
    return f"{ms:.0f}ms" if ms < 1000 else f"{ms / 1000:.1f}s"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


class Formatter:
    """Turns log lines into readable lines; ``colour`` adds ANSI colours (the caller decides when)."""

    def __init__(self, colour: bool, describe_position: Callable[[int], str] = "byte {}".format) -> None:
        self.s = Style(colour)
        self.describe_position = describe_position  # ``Log.describe_position``: positions are the log's

    def line(self, data: bytes, offset: int, obj: Any = None, parsed: bool = False) -> str:
        """The readable line for the log line ``data`` at position ``offset``; ``obj`` if already parsed."""
        if not parsed:
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                return self._invalid(data, offset, f"not valid JSON: {exc}")
        try:
            event = validate(obj)
        except InvalidEvent as exc:
            return self._invalid(data, offset, str(exc), obj if isinstance(obj, dict) else None)
        return self.event(event)

    def _head(self, ts: object, run_id: object, account_id: object, type_: object, type_style: str) -> str:
        s = self.s
        return " ".join(
            [
                s(_time(ts), "dim"),
                escape(run_id) if run_id is not None else "-",
                escape(account_id) if account_id is not None else "-",
                s(escape(type_), type_style),
            ]
        )

    def _invalid(self, data: bytes, offset: int, reason: str, obj: dict[str, Any] | None = None) -> str:
        s = self.s
        raw = _clip(escape(data.decode("utf-8", errors="backslashreplace")), MAX_RAW)
        where = self.describe_position(offset)
        mark = s(f"!! invalid line at {where}", "magenta", "bold") + f" ({escape(reason)}): {raw}"
        if obj is None:
            return mark
        head = self._head(obj.get("ts", "?"), obj.get("run_id"), obj.get("account_id"), obj.get("type", "?"), "magenta")
        return f"{head} {mark}"

    def event(self, e: dict[str, Any]) -> str:
        s = self.s
        t = e["type"]
        parts: list[str] = []
        error = None
        error_style = "red"
        if t == "run_started":
            parts += [f"task={escape(e['task_id'])}", f"accounts={len(e['accounts'])}"]
            parts.append(f"concurrency={e['concurrency']}")
            if e.get("resumed_from"):
                parts.append(f"resumed_from={escape(e['resumed_from'])}")
            if e.get("trigger") and e["trigger"] != "cli":
                parts.append(f"trigger={escape(e['trigger'])}")
        elif t == "account_started":
            parts.append(f"attempt={e['attempt']}")
        elif t == "step_finished":
            if e.get("skipped"):  # its condition said skip: neither ok nor failed
                ok = s("skipped", "dim")
            elif e["ok"]:
                ok = s("ok", "green")
            elif e.get("optional"):  # recorded, and the account went on: not a failure of the account
                ok, error_style = s(OPTIONAL_FAILED, "orange"), "orange"
            else:
                ok = s("FAILED", "red", "bold")
            # numbered from 1, like the runner's messages and the report (the log's index is from 0)
            parts += [f"step {e['index'] + 1}", escape(e["action"]), ok, _duration(float(e["duration_ms"]))]
            for key in ("url", "title"):
                if e.get(key) is not None:
                    parts.append(f"{key}={escape(e[key])}")
            error = e.get("error")
        elif t == "artifact_saved":
            parts += [escape(e["path"]), _size(e["bytes"])]
        elif t == "account_finished":
            parts += [s(escape(e["status"]), _STATUS_STYLE.get(e["status"], "bold")), f"attempt={e['attempt']}"]
            error = e.get("error")
        elif t == "run_finished":
            parts.append(s(escape(e["status"]), _STATUS_STYLE.get(e["status"], "bold")))
            if e.get("reason") is not None:
                parts.append(f"reason={escape(e['reason'])}")
        line = self._head(e["ts"], e.get("run_id"), e.get("account_id"), t, "cyan")
        if parts:
            line += " " + " ".join(parts)
        if error is not None:
            line += " " + s("error: " + _clip(escape(error), MAX_TEXT), error_style)
        return line
