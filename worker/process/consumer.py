"""A Celery consumer that refuses unfit and expired messages with an outcome instead of dropping
them, and counts every delivery at receipt, before anything that can fail."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery.worker.consumer import Consumer

from grant_worker.tasks import metrics
from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.inspection import Refusal, expiry_of, inspect_message
from grant_worker.worker.process.broker.qos import delivery_count
from grant_worker.worker.process.watchdog import note_message_taken

log = logging.getLogger(__name__)


class InspectingConsumer(Consumer):
    """Puts the receipt checks in front of Celery's own message handling, in this order:

    1. `tasks.messages.inspection.inspect_message`: too big (headers included), too deep, not JSON,
       unknown task, task id against the request-id rule → `rejected`, acknowledged.
    2. Celery `expires` passed → `rejected` with `expired` (Celery itself would discard the
       message before any handler runs, leaving no trace).
    3. The delivery is counted by task id, before the request is parsed, the Auth0 settings
       read or an outcome serialised; past `GRANTS_MAX_DELIVERIES` → `poison`. So a message
       that fails N times for any reason ends, and `ReturnToQueue` takes its count back.

    All three need Redis only (`app.grants_receipt`), never the Auth0 settings. Where Redis
    fails, the message is left unacknowledged: the visibility timeout brings it back.
    """

    def __init__(self, *args: Any, worker_options: Any = None, **kwargs: Any) -> None:
        # No mingle or gossip (broadcast chatter between workers): nothing here needs them and
        # they cost Redis calls. Turned off here rather than by command-line flags, so that
        # `celery -A … worker` runs the same consumer as `grants worker`.
        options = {**(worker_options or {}), "without_mingle": True, "without_gossip": True}
        super().__init__(*args, worker_options=options, **kwargs)

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        celery_handler = super().create_task_handler(*args, **kwargs)
        known = set(self.app.tasks)

        def on_task_received(message: Any) -> Any:
            note_message_taken()
            try:
                decision = self._receive(message, known)
            except Exception:
                # Without a recorded outcome the message must not be lost. Back to the queue
                # through this channel; where even that fails, it stays unacknowledged and the
                # visibility timeout brings it back. (Merely holding it would keep a prefetch
                # slot for good: enough of those during a failover and the consumer stops.)
                log.exception("could not record the receipt of a message; requeued")
                try:
                    message.reject(requeue=True)
                except Exception:
                    log.exception("could not requeue it either; left unacknowledged")
                return None
            if decision == "pass":
                return celery_handler(message)
            message.ack()
            return None

        return on_task_received

    def _receive(self, message: Any, known: set[str]) -> str:
        """ "pass" to hand the message to Celery, "done" when its outcome is recorded here."""
        try:
            refusal = inspect_message(
                content_type=message.content_type,
                headers=message.headers,
                body=message.body,
                task_names=known,
                properties=message.properties,
            )
        except Exception as exc:  # inspection never raises; a bug in it must not crash us
            refusal = Refusal(f"message: cannot be inspected ({type(exc).__name__})", None, "")
        if refusal is not None:
            fallback_id = refusal.task_id or f"msg-{message.delivery_tag}"
            log.warning("refused message %s: %s", fallback_id, refusal.reason[:300])
            self.app.grants_receipt().reject(
                refusal.original, fallback_id=fallback_id, error=RequestInvalid([refusal.reason])
            )
            return "done"
        task_id = str(message.headers["id"])
        expires = expiry_of(message.headers)
        if expires is not None and expires < datetime.now(UTC):
            metrics.EXPIRED.inc()
            log.warning("message %s expired at %s; rejected", task_id, expires.isoformat())
            self.app.grants_receipt().record_expired(task_id, _request_of(message), expires)
            return "done"
        desk = self.app.grants_receipt()
        try:
            # Counted as it was taken, in the transaction that recorded it (the QoS), or here.
            deliveries = delivery_count(message) or desk.count(task_id)
        except Exception as exc:
            # Redis refused the count (down, full, failing over): work on it uncounted rather
            # than hold it. Whatever fails next fails on Redis too, and goes back with a pause.
            log.warning("delivery of %s not counted (%s)", task_id, type(exc).__name__)
            return "pass"
        if desk.is_poison(deliveries):
            log.error("message %s delivered %d times; poison", task_id, deliveries)
            desk.record_poison(task_id, _request_of(message), deliveries)
            return "done"
        return "pass"


def _request_of(message: Any) -> Any:
    """The `request` kwarg of a message inspection let through (it is known to decode)."""
    try:
        _args, kwargs, _embed = message.decode()
        return kwargs.get("request")
    except Exception:
        return None
