"""Turn raw producer input into a `GrantRequest`, or into problems that name field and rule.

Pure functions: no Redis, no HTTP. Messages read like `grant.scope[3]: at most 280 characters`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.decoding import decode_json
from grant_worker.tasks.messages.limits import MAX_JSON_DEPTH, nesting_depth_of
from grant_worker.tasks.messages.models import GrantRequest


def parse_request(raw: Any) -> GrantRequest:
    """Validate a request given as a dict, a JSON string or JSON bytes.

    Text is decoded within the contract's size and depth limits (`decode_json`); a dict is held
    to the same depth. Raises `RequestInvalid` with one problem per broken rule, and nothing
    else, whatever the input.
    """
    if isinstance(raw, bytes | bytearray | str):
        raw = decode_json(raw, what="request")
    if not isinstance(raw, dict):
        raise RequestInvalid([f"request: must be a JSON object, not {_json_type(raw)}"])
    depth = nesting_depth_of(raw, stop_at=MAX_JSON_DEPTH)
    if depth > MAX_JSON_DEPTH:
        raise RequestInvalid([f"request: nested more than {MAX_JSON_DEPTH} deep"])
    try:
        return GrantRequest.model_validate(raw)
    except ValidationError as exc:
        raise RequestInvalid(describe_errors(exc)) from None
    except (RecursionError, ValueError, TypeError) as exc:
        # Pydantic reports what it can as ValidationError; anything else is still bad input.
        raise RequestInvalid([f"request: cannot be validated ({type(exc).__name__})"]) from None


def describe_errors(exc: ValidationError) -> list[str]:
    """One `location: rule` sentence per Pydantic error."""
    return [_sentence(err) for err in exc.errors()]


_NAMES_ITS_FIELD = re.compile(r"^[a-z_]+(\.[a-z_]+)*: ")


def _sentence(err: Any) -> str:
    rule, where = _rule(err), _location(err["loc"])
    # A rule across the envelope's fields (the action rules) names its field itself.
    if where == "request" and _NAMES_ITS_FIELD.match(rule):
        return rule
    return f"{where}: {rule}"


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _is_type_tag(part):
            text += f".{part}" if text else str(part)
    return text or "request"


def _is_type_tag(part: str) -> bool:
    # Pydantic puts the union member or constraint it tried into the location
    # (`function-after[…]`, `str`, `constrained-str`); they mean nothing to a producer.
    return "[" in part or part in {"str", "constrained-str", "list[constrained-str]"}


_TYPE_NAMES = {
    "string_type": "a string",
    "bool_type": "a boolean (true or false)",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "int_type": "an integer",
}


def _rule(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown field (not allowed)"
    if kind == "string_too_long":
        return f"at most {ctx['max_length']} characters"
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return "must not be empty"
        return f"at least {ctx['min_length']} characters"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx['pattern']}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    if kind in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[kind]}, not {_json_type(err.get('input'))}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(err["msg"])


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
