"""Text from web pages, made safe to print on a terminal.

Titles, URLs and error messages in the log come from web pages. An escape sequence in them (ANSI
colours, OSC window titles or hyperlinks, cursor movement, bidi overrides) must never reach the
user's terminal: every command that prints such text passes it through ``escape`` first.
"""

from __future__ import annotations

from rich.markup import escape as _markup_escape

_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for cp in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]:
        table[cp] = _NAMED.get(cp, f"\\x{cp:02x}")
    # Line/paragraph separators and bidi controls: they reorder or break what the terminal shows.
    for cp in [0x2028, 0x2029, 0x200E, 0x200F, 0x061C, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]:
        table[cp] = f"\\u{cp:04x}"
    return table


_ESCAPES = _escape_table()


def escape(text: object) -> str:
    """``text`` as a string with every control character (C0, DEL, C1) and bidi control escaped."""
    return (text if isinstance(text, str) else str(text)).translate(_ESCAPES)


def for_rich(text: object) -> str:
    """``escape(text)`` and also rich's markup escaped: a page's ``[bold]`` stays text."""
    return _markup_escape(escape("" if text is None else text))
