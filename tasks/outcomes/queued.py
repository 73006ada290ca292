"""The one decoder of a kombu/Celery message (protocol 2) as the Redis transport keeps it, for
every reader: on the queue (the envelope's JSON) or among the unacknowledged messages
(`[envelope, exchange, routing_key]`).

Anyone with access to Redis can push onto the queue, so nothing here raises: a message that is
not one we can read decodes to a `QueuedRequest` that says why (`unreadable`), so that a reader
counts or skips it in one line and goes on with the next.

A page reads only the head of a huge message (`windows.OutcomeWindows.snapshot`):
`queued_request_head` decodes what the head holds. The envelope starts with its body (base64),
so the head holds the request's first fields; a field past the cut (the batch id, which
producers write after the grant) is unknown, not absent, and the message is marked as cut.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

from grant_worker.tasks.outcomes.letters import head_object, json_object


@dataclass(frozen=True)
class QueuedRequest:
    """What a queued message asks for. `request` is the `request` kwarg ({} when unreadable);
    `request_id` the request's own id, else the task id of the headers."""

    request: dict[str, Any]
    request_id: str | None = None
    batch_id: str | None = None
    unreadable: str | None = None
    # The size of the whole message when only its head was read: its batch may lie past the cut.
    cut_from: int | None = field(default=None, compare=False)


def queued_request(raw: Any) -> QueuedRequest:
    """The request of a queue item (the envelope's JSON, or the envelope already decoded)."""
    envelope, why = json_object(raw)
    if why is not None:
        return QueuedRequest({}, unreadable=why)
    return _of_envelope(envelope)


def unacked_request(raw: Any) -> QueuedRequest:
    """The request of an unacknowledged message: kombu keeps `[envelope, exchange, key]`."""
    try:
        wrapped = json.loads(raw)
    except (ValueError, TypeError):
        return QueuedRequest({}, unreadable="not JSON")
    if isinstance(wrapped, list) and wrapped and isinstance(wrapped[0], dict):
        return _of_envelope(wrapped[0])
    return QueuedRequest({}, unreadable="not [message, exchange, routing key]")


# The envelope's first field as kombu writes it, up to the cut: the body's base64 so far.
_BODY_HEAD = re.compile(r'\s*\{\s*"body"\s*:\s*"([A-Za-z0-9+/=]*)')


def queued_request_head(head: str, size: int) -> QueuedRequest:
    """The request of a queue item of `size` bytes of which a window read the first: `head`."""
    if len(head.encode()) >= size:
        return queued_request(head)
    found = _BODY_HEAD.match(head)
    if found is None:
        return QueuedRequest({}, unreadable="cut before its body", cut_from=size)
    usable = found.group(1)[: len(found.group(1)) // 4 * 4]
    try:
        text = base64.b64decode(usable, validate=True).decode("utf-8", "ignore")
    except (binascii.Error, ValueError):
        return QueuedRequest({}, unreadable="body not base64", cut_from=size)
    # The body [args, kwargs, embed] up to the cut: the kwargs' leading fields.
    kwargs_at = text.find("{")
    kwargs = head_object(text[kwargs_at:], size)[0] if kwargs_at >= 0 else {}
    request = kwargs.get("request")
    if not isinstance(request, dict):
        return QueuedRequest({}, unreadable="cut before its request", cut_from=size)
    return _of_request(request, None, cut_from=size)


def unacked_request_head(head: str, size: int) -> QueuedRequest:
    """The request of an unacknowledged message of which a window read the first bytes."""
    if len(head.encode()) >= size:
        return unacked_request(head)
    if not head.lstrip().startswith("["):
        return QueuedRequest({}, unreadable="not [message, exchange, routing key]", cut_from=size)
    return queued_request_head(head.lstrip()[1:], size)


def _of_envelope(envelope: dict[str, Any]) -> QueuedRequest:
    headers = _object(envelope.get("headers"))
    body = envelope.get("body")
    if not isinstance(body, str):
        return _unreadable("no body", headers)
    try:
        if _object(envelope.get("properties")).get("body_encoding") == "base64":
            body = base64.b64decode(body).decode("utf-8")
        decoded = json.loads(body)
    except (ValueError, TypeError):
        return _unreadable("body not JSON", headers)
    if not (isinstance(decoded, list) and len(decoded) >= 2 and isinstance(decoded[1], dict)):
        return _unreadable("not a Celery body [args, kwargs, embed]", headers)
    request: Any = decoded[1].get("request")
    if isinstance(request, str):
        request, why = json_object(request)
        if why is not None:
            return _unreadable(f"request {why}", headers)
    if not isinstance(request, dict):
        return _unreadable("no request kwarg", headers)
    return _of_request(request, headers)


def _of_request(
    request: dict[str, Any], headers: dict[str, Any] | None, cut_from: int | None = None
) -> QueuedRequest:
    # What is not text is no request id or batch of ours.
    return QueuedRequest(
        request,
        request_id=_text(request.get("request_id")) or _text((headers or {}).get("id")),
        batch_id=_text(request.get("batch_id")),
        cut_from=cut_from,
    )


def _unreadable(why: str, headers: dict[str, Any]) -> QueuedRequest:
    return QueuedRequest({}, request_id=_text(headers.get("id")), unreadable=why)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
