"""Turn raw producer input into a `GrantRequest`, or into problems that name field and rule.

Pure functions: no Redis, no HTTP. Messages read like `grant.scope[3]: at most 280 characters`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.models import MAX_MESSAGE_BYTES, GrantRequest


def parse_request(raw: Any) -> GrantRequest:
    """Validate a request given as a dict, a JSON string or JSON bytes.

    Raises `RequestInvalid` with one problem per broken rule.
    """
    if isinstance(raw, bytes | bytearray):
        if len(raw) > MAX_MESSAGE_BYTES:
            raise RequestInvalid([f"request: at most {MAX_MESSAGE_BYTES} bytes"])
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestInvalid([f"request: not valid UTF-8 ({exc.reason})"]) from None
    if isinstance(raw, str):
        if len(raw.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
            raise RequestInvalid([f"request: at most {MAX_MESSAGE_BYTES} bytes"])
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RequestInvalid([f"request: not valid JSON ({exc.msg} at {exc.pos})"]) from None
    if not isinstance(raw, dict):
        raise RequestInvalid([f"request: must be a JSON object, not {_json_type(raw)}"])
    try:
        return GrantRequest.model_validate(raw)
    except ValidationError as exc:
        raise RequestInvalid(describe_errors(exc)) from None


def describe_errors(exc: ValidationError) -> list[str]:
    """One `location: rule` sentence per Pydantic error."""
    return [f"{_location(err['loc'])}: {_rule(err)}" for err in exc.errors()]


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
