"""A Celery consumer that refuses unfit messages with an outcome instead of dropping them."""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer

from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.gate import inspect_message
from grant_worker.worker.watchdog import note_message_taken

log = logging.getLogger(__name__)


class GatedConsumer(Consumer):
    """Puts `tasks.messages.gate.inspect_message` in front of Celery's own message handling.

    Celery logs and drops messages for unknown tasks, and never lets a producer know a
    message was not JSON; here each becomes a `rejected` outcome and a dead letter with the
    raw body, and is acknowledged so the worker keeps consuming.
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
            refusal = inspect_message(
                content_type=message.content_type,
                headers=message.headers,
                body=message.body,
                task_names=known,
            )
            if refusal is None:
                return celery_handler(message)
            fallback_id = refusal.task_id or f"msg-{message.delivery_tag}"
            log.warning("refused message %s: %s", fallback_id, refusal.reason)
            try:
                self.app.grants_handler().reject(
                    refusal.original,
                    fallback_id=fallback_id,
                    error=RequestInvalid([refusal.reason]),
                )
            except Exception:
                # Without a recorded outcome the message must not be lost: leave it unacked,
                # so the visibility timeout brings it back once Redis answers again.
                log.exception(
                    "could not record the refusal of %s; left unacknowledged", fallback_id
                )
                return None
            message.ack()
            return None

        return on_task_received
