"""The request contract's limits (docs/design.md, "The request") and the pure measures they need.

Kept apart from the models and the decoder so that both can use them without importing each
other. Sizes are UTF-8 bytes, as a producer sends them, never ASCII-escaped JSON.
"""

from __future__ import annotations

import json
from typing import Any

# A whole message, headers and properties included.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_METADATA_BYTES = 4 * 1024
# `metadata` (the object itself is 1 deep).
MAX_METADATA_DEPTH = 32
# A whole decoded document: a Celery body wraps the request in 2 levels, the request puts
# metadata at 2 more; 48 leaves room for that and for nested Celery headers, and is far below
# what Python's recursive `json` and Pydantic's serialiser can bear (~1,000).
MAX_JSON_DEPTH = 48


def utf8_size(text: str) -> int:
    """Bytes of `text` in UTF-8 (a lone surrogate counted as the 3 bytes it would take)."""
    return len(text.encode("utf-8", "surrogatepass"))


def nesting_depth_of(value: Any, *, stop_at: int = 1_000) -> int:
    """How deep arrays and objects nest in a decoded value (`{}` is 1), without recursing.

    Stops counting past `stop_at` (the answer is then "too deep" anyway).
    """
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if depth > stop_at:
            return deepest
        # Only containers go on the stack: a scalar adds no depth, and Celery's headers are
        # mostly scalars, walked for every message taken.
        pending.extend((child, depth + 1) for child in children if isinstance(child, _NESTING))
    return deepest


def json_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON. Only for values whose depth was checked first:
    `json.dumps` recurses."""
    return utf8_size(_COMPACT.encode(value))


_NESTING = (dict, list, tuple)
# What `json.dumps(value, ensure_ascii=False, separators=(",", ":"))` builds on every call; an
# encoder keeps no state between calls.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
