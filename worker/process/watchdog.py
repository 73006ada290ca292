"""The consumer watchdog: detects a worker that is alive but no longer consumes.

A known Celery/kombu failure mode: after a broker reconnect the worker process stays up, its
pool idle, while messages pile up in the queue because the consumer never re-registered its
read. Nothing crashes and nothing is logged. The watchdog samples, from a thread of its own, the
queue's length, the worker's free capacity and the last time a message was taken; when messages
have waited while the worker had room and took nothing for `stall_after_s`, it logs the stall
and ends the process with `STALLED_EXIT_CODE`, so the supervisor (systemd, Kubernetes, compose)
starts a fresh one. Unacknowledged messages come back by the visibility timeout.

Redis away is no stall. A Redis that stops answering while keeping its connections open (a
network stall, a long fork for a snapshot, a paused VM) holds every thread that talks to it,
the intake bridge's included: its loop does not come round however healthy it is. The watchdog
times its own round trip to Redis; while that fails or hangs, Redis is away, the worker waits
(not ready, logged) and the bridge is not judged. Once Redis answers again the bridge gets its
whole liveness window, counted from that moment, before it is taken for dead: only a bridge
stuck while Redis answers ends the worker.

It also writes the worker's heartbeat (`tasks.fleet.beat`) with what it saw, every
GRANTS_HEARTBEAT_INTERVAL_S, expiring after GRANTS_HEARTBEAT_TTL_S: dashboards read it, and the
other workers take a lapsed heartbeat for a dead worker and put its messages back on the queue
(`worker.process.recovery`). The heartbeat runs even when stall detection is off
(GRANTS_STALL_AFTER_S=0).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from celery.worker import state

from grant_worker.config.settings import Settings
from grant_worker.tasks.broker_faults import describe
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.delivery.shutdown import SHUTDOWN
from grant_worker.tasks.fleet import Identity, beat
from grant_worker.tasks.flow.breaker import read_breaker
from grant_worker.tasks.keys import Keys
from grant_worker.worker.exit_codes import EXIT_STALLED
from grant_worker.worker.process.broker.monitor import broker_state
from grant_worker.worker.process.broker.qos import tracked_identity

log = logging.getLogger(__name__)

STALLED_EXIT_CODE = EXIT_STALLED
_last_taken = time.monotonic()
# A round trip to Redis slower than this means Redis was away (stalled, paused) meanwhile: a
# healthy one answers LLEN in well under a millisecond, a busy one in a few.
REDIS_AWAY_AFTER_S = 5.0


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

    def restart(self) -> None:
        """Forget what was seen: Redis was away, and a consumer waiting for it is no stall."""
        self._since = None


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
        heartbeat_ttl_s: float | None = None,
        identity: Identity | None = None,
        paused: Callable[[], bool] = lambda: False,
        bridge_alive: Callable[[], bool] | None = None,
        shutting_down: Callable[[], bool] = lambda: SHUTDOWN.started,
        bridge_window_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._keys = keys
        self._queue = queue
        self._capacity = capacity
        self._hostname = hostname
        self._interval_s = interval_s
        # 0: only the heartbeat, no stall detection.
        self._detector = StallDetector(stall_after_s) if stall_after_s else None
        self._on_stall = on_stall
        self._heartbeat_ttl_s = heartbeat_ttl_s or max(interval_s * 3, 5.0)
        self._identity = identity or Identity(hostname, "-")
        # True while the fleet's breaker is open: the consumer stopped on purpose, no stall.
        self._paused = paused
        # After SIGTERM the consumer and the bridge stop on purpose, while requests finish
        # within the grace: neither is a stall, and exiting 70 then would cut the grace short.
        self._shutting_down = shutting_down
        self._bridge_alive = bridge_alive
        # How long the bridge may go without coming round (`intake_bridge.LIVENESS_S`); it is
        # judged only once Redis has answered for that long.
        self._bridge_window_s = bridge_window_s
        self._clock = clock
        # Since when Redis has answered every round trip promptly; None while it is away.
        self._answering_since: float | None = clock()
        self._away_since: float | None = None
        self._stop = threading.Event()

    def run(self) -> None:
        # Beat at once: until the first beat, the other workers cannot tell this one is alive.
        wait_s = 0.0
        while not self._stop.wait(wait_s):
            wait_s = self._interval_s
            try:
                self.check()
            except redis.RedisError as exc:
                # The broker is away: that is the reconnect logic's business, not a stall.
                self._redis_away(self._clock(), describe(exc))

    def _redis_away(self, since: float, why: str) -> None:
        self._answering_since = None
        if self._away_since is None:
            self._away_since = since
            log.warning("Redis is unavailable (%s); waiting for it, not a stall", why)

    def _redis_answered(self, asked_at: float, now: float) -> None:
        if now - asked_at >= REDIS_AWAY_AFTER_S:
            self._redis_away(asked_at, f"no answer for {now - asked_at:.0f} s")
        if self._answering_since is None:
            away_s = now - (self._away_since or asked_at)
            log.warning(
                "Redis answers again after %.1f s away; the worker carries on where it waited",
                away_s,
            )
            self._answering_since = now
            self._away_since = None
            if self._detector is not None:
                self._detector.restart()

    def check(self) -> bool:
        asked_at = self._clock()
        queued = 0 if self._paused() else int(self._client.llen(self._queue))
        now = self._clock()
        self._redis_answered(asked_at, now)
        busy = len(state.reserved_requests)
        broker_ready = broker_state.ready
        # An open breaker or a broker fault holds the consumer off on purpose: that is no stall.
        stopping = self._shutting_down()
        stalled = (
            not stopping
            and self._detector is not None
            and self._detector.observe(
                now=now,
                queued=queued if broker_ready else 0,
                busy=busy,
                capacity=self._capacity,
                last_taken=_last_taken,
            )
        )
        bridge_alive = (
            self._bridge_alive() if self._bridge_alive is not None and not stopping else None
        )
        if bridge_alive is False and not self._redis_answered_for(now, self._bridge_window_s):
            # Blocked on the Redis that was away: give it its window from Redis's return.
            bridge_alive = None
        facts: dict[str, Any] = {
            "pid": os.getpid(),
            "queued": queued,
            "busy": busy,
            "capacity": self._capacity,
            "idle_s": round(now - _last_taken, 1),
            "stalled": stalled,
            "broker_ready": broker_ready,
            "bridge_alive": bridge_alive,
            # A CLI waiting on a queue tells "no worker on it" from "a slow one" by this.
            "queues": [self._queue],
            "at": time.time(),
        }
        beat(self._client, self._keys, self._identity, facts, self._heartbeat_ttl_s)
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

    def _redis_answered_for(self, now: float, window_s: float) -> bool:
        since = self._answering_since
        return since is not None and now - since >= window_s

    def stop(self) -> None:
        self._stop.set()


def _exit_stalled() -> None:
    # A stuck consumer cannot be trusted to shut down warmly; unacknowledged messages return
    # by the visibility timeout, and outcome records make their redelivery safe.
    logging.shutdown()
    os._exit(STALLED_EXIT_CODE)


def bridge_liveness(app: Any) -> Callable[[], bool]:
    """Whether the intake bridge of `app` (`app.grants_bridge`) is alive."""

    def alive() -> bool:
        bridge = getattr(app, "grants_bridge", None)
        # Not started yet (steps start in order) is not dead.
        return True if bridge is None else bool(bridge.alive())

    return alive


def make_watchdog(
    settings: Settings,
    *,
    hostname: str,
    bridge_alive: Callable[[], bool],
    bridge_window_s: float = 0.0,
) -> Watchdog:
    """The watchdog of one worker process: it exits the process on a stall."""
    interval_s = settings.grants_heartbeat_interval_s
    if settings.grants_stall_after_s:
        interval_s = min(interval_s, settings.grants_stall_after_s / 4)
    client = make_redis(settings)
    keys = Keys(settings.grants_key_prefix)
    return Watchdog(
        client,
        keys,
        queue=settings.grants_queue,
        capacity=settings.grants_concurrency,
        hostname=hostname,
        interval_s=interval_s,
        stall_after_s=settings.grants_stall_after_s,
        on_stall=_exit_stalled,
        heartbeat_ttl_s=settings.grants_heartbeat_ttl_s,
        identity=tracked_identity() or Identity(hostname, "-"),
        paused=lambda: read_breaker(client, keys).is_open,
        bridge_alive=bridge_alive,
        bridge_window_s=bridge_window_s,
    )
