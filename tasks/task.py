"""The Celery task `grants.create`: thin on purpose, the story is in `tasks.handler`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.exceptions import Reject, Retry
from celery.worker.request import Request

from grant_worker.tasks import metrics
from grant_worker.tasks.broker_faults import is_broker_fault
from grant_worker.tasks.delivery.receipt import ReceiptDesk, requeue_delay_s
from grant_worker.tasks.errors import RequestInvalid, ReturnToQueue
from grant_worker.tasks.handler import GrantHandler
from grant_worker.tasks.messages.decoding import safe_request_id
from grant_worker.tasks.messages.inspection import TASK_NAME

log = logging.getLogger(__name__)

# A delivery that met a broker fault waits at most this long in its thread before going back.
BROKER_FAULT_PAUSE_MAX_S = 5.0


class LazyHandler:
    """Builds the process's `GrantHandler` on first use, once, shared by the pool's threads.

    Built lazily so that importing the app (`celery -A grant_worker.worker.app`) neither reads
    secrets nor opens connections; only a process that works on requests does.
    """

    def __init__(self, build: Callable[[], GrantHandler]) -> None:
        self._build = build
        self._handler: GrantHandler | None = None
        self._lock = threading.Lock()

    def __call__(self) -> GrantHandler:
        if self._handler is None:
            with self._lock:
                if self._handler is None:
                    self._handler = self._build()
        return self._handler


class ExpiryRecordingRequest(Request):
    """Celery's request, recording `expired` when Celery itself finds a message expired.

    The consumer rejects messages that arrive expired; one that expires while it waits in the
    worker (an `eta` past its `expires`, a long prefetch) is found by Celery before it runs,
    and Celery would acknowledge it without a trace. Here its outcome is recorded first.
    """

    def _announce_revoked(self, reason: Any, terminated: Any, signum: Any, expired: Any) -> None:
        if expired:
            try:
                request = (self.kwargs or {}).get("request")
                self.task.app.grants_receipt().record_expired(
                    safe_request_id(str(self.id)), request, self.expires
                )
                metrics.EXPIRED.inc()
            except Exception:
                log.exception("request %s expired; its outcome could not be recorded", self.id)
        super()._announce_revoked(reason, terminated, signum, expired)


def register_create_task(
    app: Celery,
    handler: Callable[[], GrantHandler],
    receipt: Callable[[], ReceiptDesk] | None = None,
) -> Task:
    """Register `grants.create` on `app`, working through `handler()`.

    The consumer counted the delivery at receipt (`worker.process.consumer`); `receipt()` reads that
    count to pace requeues.
    """

    @app.task(
        name=TASK_NAME,
        # This app's own: a shared task would be built into every app made later in the same
        # process, bound to this app's handler (a second app would then work through the first's).
        shared=False,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        # `ReturnToQueue` retries without end: it is waiting, not failing, and the delivery
        # ledger (not Celery's retry count) turns a real loop into `poison`.
        max_retries=None,
        Request=ExpiryRecordingRequest,
    )
    def create_grant(self: Task, *args: Any, **kwargs: Any) -> None:
        # The consumer's inspection refuses task ids against the rule; this guards direct calls.
        task_id = safe_request_id(str(self.request.id))
        try:
            if args or set(kwargs) != {"request"}:
                # The consumer's inspection refuses these before they get here; this guards direct
                # calls.
                problem = f"task {TASK_NAME} takes exactly one keyword argument `request`"
                handler().reject(
                    {"args": list(args), "kwargs": kwargs},
                    fallback_id=task_id,
                    error=RequestInvalid([problem]),
                )
                return
            handler().handle(kwargs["request"], fallback_id=task_id)
        except ReturnToQueue as exc:
            # A copy goes back on the queue (same id, same body) and this delivery is
            # acknowledged; `countdown` keeps a waiting fleet from spinning on it.
            metrics.RETURNED_TO_QUEUE.inc()
            log.info("request %s back to the queue in %.1f s: %s", task_id, exc.delay_s, exc.reason)
            try:
                raise self.retry(countdown=exc.delay_s) from exc
            except Reject as refused:
                # Celery could not publish the copy (Redis away, full) and answers with
                # `Reject(requeue=False)`, which would drop this delivery for good. Back through
                # the consumer's own connection instead; where that fails too, the message stays
                # unacknowledged and crash recovery or the visibility timeout brings it back.
                log.warning("request %s could not be re-published; requeued as it is", task_id)
                raise Reject(reason=str(refused.reason)[:200], requeue=True) from exc
        except Exception as exc:
            deliveries = _deliveries(receipt, task_id)
            if is_broker_fault(exc):
                # Redis failed (down, full, read-only, failing over). The message goes back
                # through the consumer's own connection, which holds its unacknowledged record,
                # after a pause in this thread (nothing can progress meanwhile). A re-publish
                # here could reach a demoted primary and be discarded while the original is
                # acknowledged on the new one.
                pause_s = min(requeue_delay_s(max(deliveries, 1)), BROKER_FAULT_PAUSE_MAX_S)
                log.warning(
                    "request %s: no outcome recorded (%s); back to the queue in %.0f s",
                    task_id,
                    type(exc).__name__,
                    pause_s,
                )
                metrics.REQUEUE_BACKOFFS.inc()
                time.sleep(pause_s)
                raise Reject(reason=type(exc).__name__, requeue=True) from exc
            # The settings or a bug failed us before an outcome was recorded. The message
            # comes back after a pause that doubles with each delivery (no hot loop), and the
            # count taken at receipt turns a real loop into `poison`.
            delay_s = requeue_delay_s(max(deliveries, 1))
            log.exception(
                "request %s: no outcome recorded (%s); requeued in %.0f s",
                task_id,
                type(exc).__name__,
                delay_s,
            )
            metrics.REQUEUE_BACKOFFS.inc()
            try:
                raise self.retry(countdown=delay_s) from exc
            except Retry:
                raise
            except Exception:
                # Not even the requeue could be published (Redis away): leave it to Celery.
                raise Reject(reason=type(exc).__name__, requeue=True) from exc

    return create_grant


def _deliveries(receipt: Callable[[], ReceiptDesk] | None, task_id: str) -> int:
    try:
        return receipt().deliveries(task_id) if receipt is not None else 1
    except Exception:  # Redis away: the shortest pause, the count still stands in Redis
        return 1
