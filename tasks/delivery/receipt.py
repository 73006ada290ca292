"""What happens to a message at receipt, before anything that can fail: Redis only, no Auth0.

The delivery is counted here, by task id, before the request is parsed, before the worker's
Auth0 settings are read, before an outcome is serialised: so a message that fails N times for
any reason (a parser crash, `AUTH0_DOMAIN` unset, an outcome that cannot be written) ends as
`poison` instead of being requeued thousands of times. Refusals of unfit messages and
`expired` outcomes are recorded here too, for the same reason: they need no Auth0 settings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from grant_worker.config.settings import Settings
from grant_worker.tasks import metrics
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.delivery.ledger import DeliveryLedger
from grant_worker.tasks.errors import GrantWorkerError
from grant_worker.tasks.events import log_outcome
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.decoding import safe_request_id
from grant_worker.tasks.messages.models import ErrorInfo, Outcome, is_request_id, utc_timestamp
from grant_worker.tasks.outcomes.recorder import OutcomeRecorder, make_recorder

# Requeues after a failed delivery wait this long, doubling per delivery, at most the cap:
# no hot loop, and a request that keeps failing reaches `poison` in bounded time.
REQUEUE_FIRST_S = 1.0
REQUEUE_MAX_S = 60.0


def requeue_delay_s(deliveries: int) -> float:
    """Backoff before delivery `deliveries + 1` of a request whose delivery failed."""
    return min(REQUEUE_FIRST_S * 2 ** max(deliveries - 1, 0), REQUEUE_MAX_S)


def rejected_outcome(
    raw: Any, *, fallback_id: str, error: GrantWorkerError | ErrorInfo, received_at: str
) -> Outcome:
    """A `rejected` outcome for input that could not be used (nothing was sent).

    The request id is the request's own where it keeps the rule, else the task id, itself held
    to the rule (`safe_request_id`).
    """
    fields = raw if isinstance(raw, dict) else {}
    given_id = fields.get("request_id")
    request_id = given_id if is_request_id(given_id) else safe_request_id(fallback_id)
    batch_id = fields.get("batch_id")
    info = error if isinstance(error, ErrorInfo) else error.to_error_info()
    return Outcome(
        request_id=request_id,
        batch_id=batch_id if isinstance(batch_id, str) and 0 < len(batch_id) <= 128 else None,
        status="rejected",
        error=info,
        attempts=0,
        received_at=received_at,
        finished_at=utc_timestamp(),
        metadata=None,
    )


@dataclass
class ReceiptDesk:
    """Counts deliveries at receipt and records the outcomes decided there."""

    ledger: DeliveryLedger
    recorder: OutcomeRecorder
    max_deliveries: int
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def count(self, task_id: str) -> int:
        """Count this delivery of `task_id`; the deliveries so far, this one included."""
        return self.ledger.count_delivery(task_id)

    def deliveries(self, task_id: str) -> int:
        return self.ledger.deliveries(task_id)

    def is_poison(self, deliveries: int) -> bool:
        return deliveries > self.max_deliveries

    def record_poison(self, task_id: str, original: Any, deliveries: int) -> Outcome:
        fields = original if isinstance(original, dict) else {}
        error = ErrorInfo(
            code="poison",
            message=(
                f"delivered {deliveries} times without finishing "
                f"(GRANTS_MAX_DELIVERIES={self.max_deliveries}); not tried again"
            ),
            details={"deliveries": deliveries},
        )
        stamp = utc_timestamp(self.now())
        batch_id = fields.get("batch_id")
        outcome = Outcome(
            request_id=_request_id(fields, task_id),
            batch_id=batch_id if isinstance(batch_id, str) and 0 < len(batch_id) <= 128 else None,
            status="failed",
            error=error,
            attempts=0,
            received_at=stamp,
            finished_at=stamp,
        )
        return self._record(outcome, original)

    def record_expired(self, task_id: str, original: Any, expires: datetime) -> Outcome:
        error = ErrorInfo(
            code="expired",
            message=(
                f"the message expired at {utc_timestamp(expires)} (Celery `expires`) before a "
                "worker took it; nothing was sent"
            ),
            details={"expires": utc_timestamp(expires)},
        )
        outcome = rejected_outcome(
            original, fallback_id=task_id, error=error, received_at=utc_timestamp(self.now())
        )
        return self._record(outcome, original)

    def reject(self, raw: Any, *, fallback_id: str, error: GrantWorkerError) -> Outcome:
        outcome = rejected_outcome(
            raw, fallback_id=fallback_id, error=error, received_at=utc_timestamp(self.now())
        )
        return self._record(outcome, raw)

    def _record(self, outcome: Outcome, original: Any) -> Outcome:
        if isinstance(original, bytes | bytearray):
            original = bytes(original).decode("utf-8", "backslashreplace")
        if self.recorder.record(outcome, original=original):
            # Counted and logged like the handler's outcomes: only when newly recorded, so a
            # redelivered refusal is not counted twice.
            metrics.count_outcome(outcome)
            log_outcome(outcome)
            return outcome
        return self.recorder.recorded(outcome.request_id) or outcome


def _request_id(fields: dict[str, Any], task_id: str) -> str:
    given = fields.get("request_id")
    return given if is_request_id(given) else safe_request_id(task_id)


def make_receipt_desk(settings: Settings) -> ReceiptDesk:
    """Needs only `REDIS_URL` and the deployment's names: never the Auth0 settings."""
    client = make_redis(settings)
    return ReceiptDesk(
        ledger=DeliveryLedger(
            client, Keys(settings.grants_key_prefix), ttl_s=settings.grants_record_ttl_s
        ),
        recorder=make_recorder(settings, client),
        max_deliveries=settings.grants_max_deliveries,
    )


class LazyReceiptDesk:
    """The process's `ReceiptDesk`, built on first use (importing the app opens nothing)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._desk: ReceiptDesk | None = None
        self._lock = threading.Lock()

    def __call__(self) -> ReceiptDesk:
        if self._desk is None:
            with self._lock:
                if self._desk is None:
                    self._desk = make_receipt_desk(self._settings)
        return self._desk
