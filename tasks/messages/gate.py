"""The worker's door check: which raw broker messages are fit to hand to Celery at all.

Celery would log and drop, or crash on, a message that is too big, not JSON (pickle included),
malformed, or for a task nobody registered. This module decides, from the raw parts of the
message and without deserializing anything but JSON, whether to let it through; the consumer
turns a refusal into a `rejected` outcome with the raw body. Pure: no Redis, no Celery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grant_worker.tasks.messages.models import MAX_MESSAGE_BYTES

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
    *, content_type: str | None, headers: Any, body: bytes | str | None, task_names: set[str]
) -> Refusal | None:
    """Return a `Refusal` for a message the task must not see, or None to let it through."""
    raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else (body or b"")
    task_id = _task_id(headers)
    if len(raw) > MAX_MESSAGE_BYTES:
        return Refusal(
            f"message: at most {MAX_MESSAGE_BYTES} bytes, got {len(raw)}; not read",
            task_id,
            raw[:1024].decode("utf-8", "backslashreplace") + "…",
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
        return Refusal(f"message: unknown task name {headers['task']!r}", task_id, text)
    if task_id is None:
        return Refusal("message: malformed Celery message (no id header)", None, text)
    try:
        decoded = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return Refusal("message: body is not valid UTF-8", task_id, text)
    except json.JSONDecodeError as exc:
        return Refusal(f"message: body is not valid JSON ({exc.msg})", task_id, text)
    return _check_body(decoded, task_id, text)


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


def _task_id(headers: Any) -> str | None:
    if isinstance(headers, dict) and isinstance(headers.get("id"), str) and headers["id"]:
        return str(headers["id"])
    return None
