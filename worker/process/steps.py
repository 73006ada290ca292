"""Every bootstep of the worker process, and the one list `create_app` adds them from.

A step only builds its service from `worker.app.grants_settings`, starts it and stops it, the
way Celery's own `Heart` step (`celery.worker.consumer.heart`) starts the service of
`celery.worker.heartbeat`; what each service does lives in its own module.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, bootsteps

from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.fleet import Identity
from grant_worker.tasks.keys import Keys
from grant_worker.worker.process import health, shutdown
from grant_worker.worker.process.breaker_watch import (
    BreakerWatch,
    consumer_calls,
    make_breaker_watch,
)
from grant_worker.worker.process.broker.monitor import BrokerMonitor, guard_broker
from grant_worker.worker.process.broker.qos import track_as
from grant_worker.worker.process.intake_bridge import (
    LIVENESS_S,
    STOP_WAIT_S,
    IntakeBridge,
    make_intake_bridge,
)
from grant_worker.worker.process.reconcile import Reconciler
from grant_worker.worker.process.recovery import Recovery, RecoveryLoop, kombu_restore
from grant_worker.worker.process.watchdog import Watchdog, bridge_liveness, make_watchdog


def _run_in_thread(run: Callable[[], None], name: str) -> None:
    threading.Thread(target=run, name=name, daemon=True).start()


class BrokerGuardStep(bootsteps.StartStopStep):
    """Checks the broker at start (`guard_broker`), then runs its `BrokerMonitor`."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._monitor: BrokerMonitor | None = None

    def start(self, worker: Any) -> None:
        hostname = getattr(worker, "hostname", None) or "worker"
        self._monitor = guard_broker(worker.app.grants_settings, hostname)
        _run_in_thread(self._monitor.run, "broker-monitor")

    def stop(self, worker: Any) -> None:
        if self._monitor is not None:
            self._monitor.stop()


class IntakeBridgeStep(bootsteps.StartStopStep):
    """Runs an `IntakeBridge` thread, published as `app.grants_bridge` for the watchdog."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._bridge: IntakeBridge | None = None
        self._thread: threading.Thread | None = None

    def start(self, worker: Any) -> None:
        self._bridge = make_intake_bridge(worker.app)
        worker.app.grants_bridge = self._bridge
        self._thread = self._bridge.start_in_thread()

    def stop(self, worker: Any) -> None:
        if self._bridge is not None:
            self._bridge.stop()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_S)


class WatchdogStep(bootsteps.StartStopStep):
    """Runs the `Watchdog` thread: the heartbeat, and the exit on a stalled consumer."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._watchdog: Watchdog | None = None

    def start(self, worker: Any) -> None:
        self._watchdog = make_watchdog(
            worker.app.grants_settings,
            hostname=getattr(worker, "hostname", None) or socket.gethostname(),
            bridge_alive=bridge_liveness(worker.app),
            bridge_window_s=LIVENESS_S,
        )
        _run_in_thread(self._watchdog.run, "watchdog")

    def stop(self, worker: Any) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()


class RecoveryStep(bootsteps.StartStopStep):
    """Gives the worker its identity, then sweeps for lapsed workers for its whole life."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        settings = worker.app.grants_settings
        self._keys = Keys(settings.grants_key_prefix)
        # Set before the consumer takes its first message, so every tag it holds is tracked.
        self.identity = Identity.new(getattr(worker, "hostname", None) or socket.gethostname())
        track_as(self.identity, self._keys, deliveries_ttl_s=settings.grants_record_ttl_s)
        worker.grants_identity = self.identity
        self._loop: RecoveryLoop | None = None
        shutdown.install(worker, settings.grants_shutdown_grace_s)

    def start(self, worker: Any) -> None:
        settings = worker.app.grants_settings
        restore = kombu_restore(worker.app)
        recovery = Recovery(
            make_redis(settings),
            self._keys,
            me=self.identity,
            restore_by_tag=restore,
            queue=settings.grants_queue,
        )
        worker.grants_recovery = recovery
        reconciler = Reconciler(
            recovery.client,
            self._keys,
            me=self.identity,
            restore_by_tag=restore,
            # Past it, kombu's own restore of unacknowledged messages has done the same.
            window_s=settings.visibility_timeout_s,
        )
        reconciler.prime()
        self._loop = RecoveryLoop(
            recovery, interval_s=settings.grants_heartbeat_interval_s, reconciler=reconciler
        )
        _run_in_thread(self._loop.run, "recovery")

    def stop(self, worker: Any) -> None:
        if self._loop is not None:
            self._loop.stop()


class LoopTickStep(bootsteps.StartStopStep):
    """Ticks `health.note_consumer_loop` from the consumer's event loop, for `/healthz`."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._timer_entry: Any = None

    def start(self, parent: Any) -> None:
        health.note_consumer_loop()
        self._timer_entry = parent.timer.call_repeatedly(
            health.LOOP_TICK_S, health.note_consumer_loop
        )

    def stop(self, parent: Any) -> None:
        if self._timer_entry is not None:
            self._timer_entry.cancel()
            self._timer_entry = None


class BreakerWatchStep(bootsteps.StartStopStep):
    """Runs the `BreakerWatch` thread, which pauses and resumes this worker's consumer."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._watch: BreakerWatch | None = None

    def start(self, worker: Any) -> None:
        settings = worker.app.grants_settings
        pause, resume = consumer_calls(worker, settings.grants_queue)
        self._watch = make_breaker_watch(
            settings, worker.app.grants_handler, pause_consuming=pause, resume_consuming=resume
        )
        _run_in_thread(self._watch.run, "breaker-watch")

    def stop(self, worker: Any) -> None:
        if self._watch is not None:
            self._watch.stop()


# (blueprint, step) in the order `create_app` adds them: "worker" steps run beside the
# worker's pool, "consumer" steps inside its consumer.
STEPS: tuple[tuple[str, type[bootsteps.StartStopStep]], ...] = (
    ("worker", BrokerGuardStep),
    ("worker", IntakeBridgeStep),
    ("worker", WatchdogStep),
    ("worker", RecoveryStep),
    ("consumer", LoopTickStep),
    ("worker", BreakerWatchStep),
)


def add_steps(app: Celery) -> None:
    """Add every step of `STEPS` to `app`'s blueprints."""
    for blueprint, step in STEPS:
        app.steps[blueprint].add(step)
