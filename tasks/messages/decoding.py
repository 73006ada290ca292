"""Bounded JSON decoding: the one way every door of the project turns untrusted text into values.

Python's `json` recurses once per nesting level: a 2.4 KB document nested 1,200 deep raises
`RecursionError` (not `JSONDecodeError`), and a value nested a few hundred deep decodes fine but
cannot be serialised again by Pydantic. So size and depth are checked on the raw text first,
without recursion, and whatever the decoder still raises becomes a `RequestInvalid` naming the
field and the rule. Callers: the consumer's inspection, the transport, the intake bridge, the
validation of requests (and through it `GrantClient`), the CLI and the bulk-file reader. Pure:
no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.limits import MAX_JSON_DEPTH, MAX_MESSAGE_BYTES, utf8_size
from grant_worker.tasks.messages.models import is_request_id

# A JSON string literal (escapes included), removed before counting brackets so that a `[`
# inside a string does not count as nesting. The closing quote is optional: an unterminated
# string then runs to the end in one match, and the scan stays linear on hostile text (with a
# mandatory quote, `"\"\"\"…` would be retried from every quote: quadratic).
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in `text` (`{}` is 1), without recursing.

    Works on any text, valid JSON or not: an unterminated string ends the count there.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
    return deepest


def decode_json(
    raw: bytes | bytearray | str,
    *,
    what: str = "request",
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    loads: Callable[[str], Any] = json.loads,
) -> Any:
    """Decode `raw` as JSON within `max_bytes` (UTF-8) and `max_depth`.

    Raises `RequestInvalid` with one problem naming `what` and the rule broken; never
    `RecursionError`, `MemoryError` from a huge input, or `UnicodeDecodeError`. `loads` is the
    decoder to use once the text is known to be bounded (kombu's, for its envelopes).
    """
    if isinstance(raw, bytes | bytearray):
        if len(raw) > max_bytes:
            raise RequestInvalid([f"{what}: at most {max_bytes} bytes, got {len(raw)}; not read"])
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestInvalid([f"{what}: not valid UTF-8 ({exc.reason})"]) from None
    else:
        text = raw
        # A str of N characters is at least N bytes: the cheap check first.
        if len(text) > max_bytes or utf8_size(text) > max_bytes:
            raise RequestInvalid([f"{what}: at most {max_bytes} bytes; not read"])
    # Nothing nests deeper than it has opening brackets (those inside strings counted too): two
    # scans in C spare the bracket walk for the everyday message, which has a handful.
    if text.count("[") + text.count("{") > max_depth:
        depth = nesting_depth(text)
        if depth > max_depth:
            raise RequestInvalid([f"{what}: nested {depth} deep, at most {max_depth}; not read"])
    try:
        return loads(text)
    except json.JSONDecodeError as exc:
        raise RequestInvalid([f"{what}: not valid JSON ({exc.msg} at {exc.pos})"]) from None
    except (RecursionError, ValueError) as exc:
        # Belt and braces: the depth scan should have caught it already.
        raise RequestInvalid([f"{what}: cannot be decoded ({type(exc).__name__})"]) from None


def safe_request_id(candidate: Any, *, prefix: str = "invalid-id") -> str:
    """`candidate` where it keeps the request-id rule, else a stable id derived from it.

    A task id becomes a Redis key and a stream field: an id of 4 MiB, or with control or
    bidirectional characters, must not. The derived id is the same for every delivery of the
    same message, so redeliveries still meet the same record.
    """
    if is_request_id(candidate):
        return candidate
    text = candidate if isinstance(candidate, str) else repr(candidate)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{prefix}-{digest}"
