"""The one sanitiser of text shown to people: CLI lines, Rich output, JSON lines, dashboard pages.

Producers control `batch_id`, `metadata` and, through the tenant's messages, parts of `error`.
Shown raw, a control character can move the cursor, set a terminal title (OSC) or clear the
screen, and a bidi control (U+202A-202E, U+2066-2069) can make text read differently from what
it is. Every such character becomes a visible escape (`\\x1b`, `\\u202e`); nothing else changes,
so ordinary non-ASCII text stays readable. Markup is never interpreted: the CLI escapes what it
puts into Rich markup (`worker.cli.base.rich_safe`), the dashboard's Jinja2 autoescapes after
this (its `finalize`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

# The bidi embedding, override and isolate controls (what `unicodedata.bidirectional` calls
# LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI), plus the implicit marks that can reorder too.
_BIDI_CLASSES = frozenset({"LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI"})
_BIDI_MARKS = frozenset({"\u200e", "\u200f", "\u061c"})
# Characters that are never unsafe, checked first so that plain text costs one regex pass.
_PLAIN = re.compile(r"[\x20-\x7e\t\n]*")


def unsafe(char: str, *, keep: str = "") -> bool:
    """True for a character that must not reach a terminal or a page as it is."""
    if char in keep:
        return False
    return (
        unicodedata.category(char) == "Cc"
        or unicodedata.bidirectional(char) in _BIDI_CLASSES
        or char in _BIDI_MARKS
        or char in ("\u2028", "\u2029")
    )


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(value: Any, *, multiline: bool = False) -> str:
    """`value` as text safe to show: controls and bidi controls as visible escapes.

    `multiline`: keep newlines and tabs (text meant to span lines); otherwise they are escaped
    too, so that one value stays on one line.
    """
    text = value if isinstance(value, str) else str(value)
    keep = "\n\t" if multiline else ""
    if _PLAIN.fullmatch(text) and (multiline or ("\n" not in text and "\t" not in text)):
        return text
    return "".join(_escape(c) if unsafe(c, keep=keep) else c for c in text)


def shown_json(data: Any, **dumps: Any) -> str:
    """`json.dumps(data)` with every unsafe character written as a `\\uXXXX` escape.

    Still exact JSON (a JSON reader gets the same values back): `json.dumps` writes such
    characters only inside strings, where `\\uXXXX` means the same character.
    """
    text = json.dumps(data, ensure_ascii=False, **dumps)
    return json_text(text)


def json_text(text: str) -> str:
    """A JSON document already written (e.g. by pydantic), with unsafe characters escaped."""
    if _PLAIN.fullmatch(text):
        return text
    # A raw newline or tab in `json.dumps` output is layout (indent=), never inside a string.
    return "".join(f"\\u{ord(c):04x}" if unsafe(c, keep="\n\t") else c for c in text)
