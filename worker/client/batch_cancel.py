"""Withdrawing a batch's queued requests (`grants batch cancel`).

Each queued message of the batch is removed from the Celery queue's list and recorded as
`rejected` with code `cancelled` in one atomic step (the recorder's script with `withdraw`): a
message a worker took in the meantime is left to the worker, never both run and cancelled. The
dead letter keeps the original request, so `grants dlq replay --batch-id B` sends it later.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from grant_worker.tasks.messages.models import ErrorInfo, Outcome, utc_timestamp
from grant_worker.tasks.outcomes.queued import queued_request
from grant_worker.tasks.outcomes.recorder import make_recorder
from grant_worker.worker.client.grant_client import GrantClient

QUEUE_PAGE = 1000
CANCELLED_MESSAGE = "withdrawn from the queue by `grants batch cancel` before any call"


@dataclass
class Cancellation:
    """What a cancel did: request ids withdrawn, and those a worker took first."""

    withdrawn: list[str] = field(default_factory=list)
    taken_first: list[str] = field(default_factory=list)


def queued_messages(client: GrantClient, batch_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The batch's messages on the queue: (exact item, request), newest first.

    Pages from the head of the list, where producers push: an item pushed meanwhile shifts the
    pages, so an item may be seen twice (withdrawing it twice does nothing) but none is missed.
    """
    queue = client.settings.grants_queue
    start = 0
    while True:
        items = cast(list[Any], client.redis.lrange(queue, start, start + QUEUE_PAGE - 1))
        for item in items:
            text = item.decode() if isinstance(item, bytes) else item
            found = queued_request(text)
            if found.unreadable is None and found.batch_id == batch_id:
                yield text, found.request
        if len(items) < QUEUE_PAGE:
            return
        start += QUEUE_PAGE


def cancel_batch(client: GrantClient, batch_id: str, *, dry_run: bool = False) -> Cancellation:
    """Withdraw every queued message of `batch_id`, recording each as `cancelled`."""
    recorder = make_recorder(client.settings, client.redis)
    done = Cancellation()
    seen: set[str] = set()
    for item, request in queued_messages(client, batch_id):
        request_id = _request_id(item, request)
        if request_id in seen:
            continue
        seen.add(request_id)
        if dry_run:
            done.withdrawn.append(request_id)
            continue
        now = utc_timestamp()
        outcome = Outcome(
            request_id=request_id,
            batch_id=batch_id,
            status="rejected",
            error=ErrorInfo(code="cancelled", message=CANCELLED_MESSAGE),
            received_at=now,
            finished_at=now,
            metadata=request.get("metadata") if isinstance(request.get("metadata"), dict) else None,
        )
        if recorder.record(outcome, original=request, withdraw=item):
            done.withdrawn.append(request_id)
        else:
            done.taken_first.append(request_id)
    return done


def _request_id(item: str, request: dict[str, Any]) -> str:
    given = request.get("request_id")
    if isinstance(given, str):
        return given
    # Requests without an id run under their Celery task id (docs/design.md, the request).
    return str(json.loads(item).get("headers", {}).get("id"))
