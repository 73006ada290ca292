"""The worker's door check: which raw broker messages are fit to hand to Celery at all.

Celery would log and drop, or crash on, a message that is too big (headers and properties
count), nested too deep, not JSON (pickle included), malformed, with a task id that breaks the
request-id rule, or for a task nobody registered. This module decides, from the raw parts of the
message and without deserializing anything but JSON, whether to let it through; the consumer
turns a refusal into a `rejected` outcome with the raw body. Pure: no Redis, no Celery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.decoding import decode_json, safe_request_id
from grant_worker.tasks.messages.limits import (
    MAX_JSON_DEPTH,
    MAX_MESSAGE_BYTES,
    json_size,
    nesting_depth_of,
    utf8_size,
)
from grant_worker.tasks.messages.models import REQUEST_ID_PATTERN, is_request_id

TASK_NAME = "grants.create"
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Refusal:
    """A message that must not reach the task, and what the outcome should say."""

    reason: str
    task_id: str | None
    # The `request` kwarg where it could be read, else the raw body as text.
    original: Any


def inspect_message(
    *,
    content_type: str | None,
    headers: Any,
    body: bytes | str | None,
    task_names: set[str],
    properties: Any = None,
) -> Refusal | None:
    """Return a `Refusal` for a message the task must not see, or None to let it through.

    Never raises: whatever the parts hold, the answer is a refusal or None.
    """
    raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else (body or b"")
    too_deep = _too_deep(headers, properties)
    if too_deep:
        return Refusal(too_deep, None, _preview(raw))
    size = len(raw) + _size(headers) + _size(properties)
    task_id, id_problem = _task_id(headers)
    if size > MAX_MESSAGE_BYTES:
        return Refusal(
            f"message: at most {MAX_MESSAGE_BYTES} bytes with headers and properties, "
            f"got {size}; not read",
            task_id,
            _preview(raw),
        )
    text = raw.decode("utf-8", "backslashreplace")
    if (content_type or "").split(";")[0].strip().lower() != JSON_CONTENT_TYPE:
        return Refusal(
            f"message: content type {content_type!r} is not accepted (JSON only); "
            "the body was not deserialized",
            task_id,
            text,
        )
    if not isinstance(headers, dict) or "task" not in headers:
        return Refusal(
            "message: malformed Celery message (no task header; protocol 2 expected)",
            task_id,
            text,
        )
    if headers["task"] not in task_names:
        return Refusal(f"message: unknown task name {str(headers['task'])[:200]!r}", task_id, text)
    if task_id is None:
        return Refusal("message: malformed Celery message (no id header)", None, text)
    if id_problem:
        return Refusal(id_problem, task_id, text)
    try:
        decoded = decode_json(raw, what="message body")
    except RequestInvalid as exc:
        return Refusal(exc.message, task_id, text)
    return _check_body(decoded, task_id, text)


def expiry_of(headers: Any) -> datetime | None:
    """The Celery `expires` header as an aware datetime; None when absent or unreadable.

    Celery producers send ISO 8601 (`send_task(..., expires=…)` converts seconds to a time);
    naive times are taken as UTC, as Celery's own default (`enable_utc`) does.
    """
    value = headers.get("expires") if isinstance(headers, dict) else None
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _too_deep(*parts: Any) -> str | None:
    for part in parts:
        if nesting_depth_of(part, stop_at=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            return (
                f"message: headers or properties nested more than {MAX_JSON_DEPTH} deep; not read"
            )
    return None


def _size(part: Any) -> int:
    if part is None:
        return 0
    try:
        return json_size(part)
    except (TypeError, ValueError):
        return utf8_size(repr(part))


def _preview(raw: bytes) -> str:
    return raw[:1024].decode("utf-8", "backslashreplace") + ("…" if len(raw) > 1024 else "")


def _check_body(decoded: Any, task_id: str, text: str) -> Refusal | None:
    shape = "a Celery body [args, kwargs, embed] with the one kwarg `request`"
    if not (isinstance(decoded, list) and len(decoded) == 3):
        return Refusal(f"message: malformed Celery body (expected {shape})", task_id, text)
    args, kwargs, _embed = decoded
    if args or not isinstance(kwargs, dict) or set(kwargs) != {"request"}:
        received = sorted(kwargs) if isinstance(kwargs, dict) else type(kwargs).__name__
        return Refusal(
            f"message: expected {shape}; got {len(args) if isinstance(args, list) else '?'} "
            f"args and kwargs {received}",
            task_id,
            kwargs.get("request", text) if isinstance(kwargs, dict) else text,
        )
    return None


def _task_id(headers: Any) -> tuple[str | None, str | None]:
    """The task id as the outcome may use it, and why the one given breaks the rule, if it does.

    An id that breaks the request-id rule (4 MiB long, bidirectional controls, …) never
    becomes a key: the outcome gets a stable id derived from it instead.
    """
    given = headers.get("id") if isinstance(headers, dict) else None
    if given is None or given == "":
        return None, None
    if is_request_id(given):
        return given, None
    shown = str(given)[:40]
    return safe_request_id(given), (
        f"task id: must match {REQUEST_ID_PATTERN} (got {shown!r}"
        f"{'…' if len(str(given)) > 40 else ''})"
    )
