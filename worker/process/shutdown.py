"""Graceful shutdown inside a grace period (SIGTERM, Ctrl-C).

Celery's warm shutdown stops consuming at once and waits for every task in hand; with a tenant
that hangs, that wait has no end a supervisor would grant (Docker's 10 s, Kubernetes' 30 s) and
the worker is SIGKILLed. Here, on the shutdown signal:

1. `tasks.delivery.shutdown.SHUTDOWN` is set: a request that has not begun, or is about to
   wait (a backoff), goes back to the queue at once (`ReturnToQueue`); prefetched messages
   that never started are returned by kombu as the consumer closes;
2. calls already sent get GRANTS_SHUTDOWN_GRACE_S to finish;
3. whatever is still in flight then is abandoned: its message is put back on the queue through
   kombu's restore path (`worker.process.recovery`); its create stays marked possibly sent (the
   marker is set before every POST), so the next delivery resolves it by a lookup, never twice; and
   the process exits 0.

Supervisors must allow a little more than the grace: compose `stop_grace_period`, Kubernetes
`terminationGracePeriodSeconds` (docs/operations.md, "Stopping a worker").
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery import signals

from grant_worker.tasks import metrics
from grant_worker.tasks.delivery.shutdown import SHUTDOWN
from grant_worker.tasks.fleet import forget
from grant_worker.worker.process.broker.qos import tracked_identity
from grant_worker.worker.process.recovery import Recovery

log = logging.getLogger(__name__)

# Exit code after the grace ran out and what was in flight went back to the queue: nothing was
# lost, so the supervisor must not see a failure.
ABANDONED_EXIT_CODE = 0


class GraceTimer:
    """After `grace_s`, hand back what is still in flight and end the process."""

    def __init__(self, worker: Any, grace_s: float) -> None:
        self._worker = worker
        self._grace_s = grace_s
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run, name="shutdown-grace", daemon=True).start()

    def _run(self) -> None:
        threading.Event().wait(self._grace_s)
        self.abandon()

    def abandon(self) -> None:
        recovery: Recovery | None = getattr(self._worker, "grants_recovery", None)
        identity = tracked_identity()
        returned = 0
        if recovery is not None and identity is not None:
            try:
                returned = recovery.recover(identity)
            except Exception:
                # The visibility timeout (or the other workers, once the heartbeat lapses)
                # returns them instead; exiting now is still what the supervisor asked for.
                log.exception("could not return the requests in flight; others will")
        metrics.ABANDONED_AT_SHUTDOWN.inc(returned)
        log.warning(
            "shutdown grace of %.0f s over: %d requests still in flight returned to the queue "
            "(marked possibly sent); exiting",
            self._grace_s,
            returned,
        )
        logging.shutdown()
        os._exit(ABANDONED_EXIT_CODE)


def install(worker: Any, grace_s: float) -> None:
    """Hook the shutdown of `worker` (called once, as the worker starts)."""
    timer = GraceTimer(worker, grace_s)

    def on_shutting_down(sender: Any = None, **_: Any) -> None:
        # Runs in the signal handler: set a flag and start a thread, nothing more.
        SHUTDOWN.begin()
        timer.start()

    def on_shutdown(sender: Any = None, **_: Any) -> None:
        recovery: Recovery | None = getattr(worker, "grants_recovery", None)
        identity = tracked_identity()
        if recovery is None or identity is None:
            return
        try:
            # Whatever kombu did not return as it closed goes back now; then nothing is held.
            recovery.recover(identity)
            forget(recovery.client, recovery.keys, identity)
        except Exception:
            log.exception("could not deregister this worker; its heartbeat lapses instead")

    signals.worker_shutting_down.connect(on_shutting_down, weak=False)
    signals.worker_shutdown.connect(on_shutdown, weak=False)
