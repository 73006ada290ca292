"""The named log events of a request's life, and the request every line logged for it carries.

Levels and field names stay one convention because every emitter calls these:
- `log_outcome`: one per recorded outcome; INFO when done, WARNING when failed or rejected;
- `log_broker_fault`: ERROR when Redis (the broker and the record) failed us, with the reason,
  never the URL.

`enter_request` / `leave_request` set the request of the current thread (the task's pre- and
post-run hooks call them); the worker's log formatter reads it with `current_request`, so
retries, conflict resolution and Auth0 errors are logged with their request id without passing
it down by hand.
"""

from __future__ import annotations

import contextvars
import logging
from datetime import datetime

from grant_worker.tasks.messages.models import Outcome

OUTCOME_EVENT = "outcome"
BROKER_FAULT_EVENT = "broker_fault"

log = logging.getLogger("grant_worker.events")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "grants_request_id", default=None
)
_batch_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "grants_batch_id", default=None
)


def enter_request(request_id: str | None, batch_id: str | None = None) -> None:
    """From now on, every line this thread logs carries `request_id` (and `batch_id`)."""
    _request_id.set(request_id)
    _batch_id.set(batch_id)


def leave_request() -> None:
    _request_id.set(None)
    _batch_id.set(None)


def current_request() -> tuple[str | None, str | None]:
    """(request id, batch id) of the request this thread works on, or (None, None)."""
    return _request_id.get(), _batch_id.get()


def _duration_s(outcome: Outcome) -> float | None:
    try:
        started = datetime.fromisoformat(outcome.received_at.replace("Z", "+00:00"))
        finished = datetime.fromisoformat(outcome.finished_at.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return round((finished - started).total_seconds(), 3)


def log_outcome(outcome: Outcome) -> None:
    """The one event of a request's recorded outcome: WARNING when failed or rejected."""
    code = outcome.error.code if outcome.error else None
    level = logging.INFO if outcome.done else logging.WARNING
    log.log(
        level,
        "request %s %s%s",
        outcome.request_id,
        outcome.status,
        f" ({code})" if code else "",
        extra={
            "event": OUTCOME_EVENT,
            "request_id": outcome.request_id,
            "batch_id": outcome.batch_id,
            "status": outcome.status,
            "code": code,
            "attempts": outcome.attempts,
            "duration_s": _duration_s(outcome),
        },
    )


def log_broker_fault(what: str, exc: BaseException | str) -> None:
    """Redis (the broker and the record) failed us: ERROR, with the reason, never the URL."""
    reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    log.error("%s: %s", what, reason, extra={"event": BROKER_FAULT_EVENT, "reason": reason})
