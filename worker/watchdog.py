"""The consumer watchdog: detects a worker that is alive but no longer consumes.

A known Celery/kombu failure mode: after a broker reconnect the worker process stays up, its
pool idle, while messages pile up in the queue because the consumer never re-registered its
read. Nothing crashes and nothing is logged. The watchdog samples, from a thread of its own, the
queue's length, the worker's free capacity and the last time a message was taken; when messages
have waited while the worker had room and took nothing for `stall_after_s`, it logs the stall
and ends the process with `STALLED_EXIT_CODE`, so the supervisor (systemd, Kubernetes, compose)
starts a fresh one. Unacknowledged messages come back by the visibility timeout.

It also writes a heartbeat (`Keys.heartbeat(hostname)`) with what it saw, for dashboards.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from celery import bootsteps
from celery.worker import state

from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.keys import Keys
from grant_worker.worker.broker_faults import broker_state

log = logging.getLogger(__name__)

STALLED_EXIT_CODE = 70
_last_taken = time.monotonic()


def note_message_taken() -> None:
    """Called by the consumer for every message it receives."""
    global _last_taken
    _last_taken = time.monotonic()


@dataclass
class StallDetector:
    """Pure decision: has the backlog-with-room condition held for `stall_after_s`?"""

    stall_after_s: float
    _since: float | None = None

    def observe(
        self, *, now: float, queued: int, busy: int, capacity: int, last_taken: float
    ) -> bool:
        waiting_with_room = queued > 0 and busy < capacity and now - last_taken >= 1.0
        if not waiting_with_room:
            self._since = None
            return False
        if self._since is None:
            # Between samples we saw nothing; the condition is known to hold from now on.
            self._since = now
        return now - self._since >= self.stall_after_s


class Watchdog:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        queue: str,
        capacity: int,
        hostname: str,
        interval_s: float,
        stall_after_s: float,
        on_stall: Callable[[], None],
        bridge_alive: Callable[[], bool] | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._queue = queue
        self._capacity = capacity
        self._hostname = hostname
        self._interval_s = interval_s
        self._detector = StallDetector(stall_after_s)
        self._on_stall = on_stall
        self._bridge_alive = bridge_alive
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.check()
            except redis.RedisError as exc:
                # The broker is away: that is the reconnect logic's business, not a stall.
                log.debug("watchdog: %s", type(exc).__name__)

    def check(self) -> bool:
        now = time.monotonic()
        queued = int(self._client.llen(self._queue))
        busy = len(state.reserved_requests)
        broker_ready = broker_state.ready
        # During a broker fault the consumer holds off on purpose: that is no stall.
        stalled = self._detector.observe(
            now=now,
            queued=queued if broker_ready else 0,
            busy=busy,
            capacity=self._capacity,
            last_taken=_last_taken,
        )
        bridge_alive = self._bridge_alive() if self._bridge_alive is not None else None
        beat: dict[str, Any] = {
            "pid": os.getpid(),
            "queued": queued,
            "busy": busy,
            "capacity": self._capacity,
            "idle_s": round(now - _last_taken, 1),
            "stalled": stalled,
            "broker_ready": broker_ready,
            "bridge_alive": bridge_alive,
            "at": time.time(),
        }
        ttl_s = max(int(self._interval_s * 3), 5)
        self._client.set(self._keys.heartbeat(self._hostname), json.dumps(beat), ex=ttl_s)
        if stalled:
            log.critical(
                "consumer stalled: %d messages queued, %d/%d busy, nothing taken for %.0f s; "
                "exiting so that a fresh worker takes over",
                queued,
                busy,
                self._capacity,
                now - _last_taken,
            )
            self._on_stall()
        if bridge_alive is False:
            log.critical("the intake bridge is not running; exiting so that a fresh worker starts")
            self._on_stall()
            return True
        return stalled

    def stop(self) -> None:
        self._stop.set()


def _exit_stalled() -> None:
    # A stuck consumer cannot be trusted to shut down warmly; unacknowledged messages return
    # by the visibility timeout, and outcome records make their redelivery safe.
    logging.shutdown()
    os._exit(STALLED_EXIT_CODE)


def _bridge_liveness(worker: Any) -> Callable[[], bool]:
    def alive() -> bool:
        bridge = getattr(worker.app, "grants_bridge", None)
        # Not started yet (steps start in order) is not dead.
        return True if bridge is None else bool(bridge.alive())

    return alive


class WatchdogStep(bootsteps.StartStopStep):
    """Runs the `Watchdog` thread for the life of a Celery worker."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._watchdog: Watchdog | None = None

    def start(self, worker: Any) -> None:
        settings = worker.app.grants_settings
        if not settings.grants_stall_after_s:
            return
        self._watchdog = Watchdog(
            make_redis(settings),
            Keys(settings.grants_key_prefix),
            queue=settings.grants_queue,
            capacity=settings.grants_concurrency,
            hostname=getattr(worker, "hostname", None) or socket.gethostname(),
            interval_s=min(5.0, settings.grants_stall_after_s / 4),
            stall_after_s=settings.grants_stall_after_s,
            on_stall=_exit_stalled,
            bridge_alive=_bridge_liveness(worker),
        )
        threading.Thread(target=self._watchdog.run, name="watchdog", daemon=True).start()

    def stop(self, worker: Any) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
