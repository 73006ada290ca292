"""Broker faults: what each Redis condition means for a worker, and the worker's readiness.

- Transient (`OOM` under `noeviction`, `READONLY` from a demoted primary, `LOADING`, a lost
  connection, `MASTERDOWN`): stop consuming, report not ready, resume by itself once Redis
  accepts writes again. Never an exit, never with code 0.
- Authentication (`WRONGPASS`, `NOAUTH`, ACL refusals): no amount of waiting helps; the worker
  exits with code 2 (configuration error) and says which setting to check.

`BrokerMonitor` probes Redis with a small write from a thread of its own, so that a broker that
answers reads but refuses writes (OOM, a replica) is noticed even while the queue is empty;
`check_persistence` reads, once at start, whether Redis can lose or evict queued messages.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks import metrics
from grant_worker.tasks.broker_faults import classify, describe
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.keys import Keys
from grant_worker.worker.exit_codes import EXIT_USAGE

log = logging.getLogger(__name__)


def auth_failure_message(exc: BaseException) -> str:
    return (
        f"Redis refused this worker's credentials ({type(exc).__name__}); check the user and "
        "password in REDIS_URL (or the Sentinel master's ACL). Exiting with code 2: waiting "
        "will not fix this."
    )


class BrokerState:
    """Process-wide: is the broker taking our writes? Read by health and the transport."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fault: str | None = None
        self._since = 0.0
        self._consecutive = 0

    def note_fault(self, exc: BaseException) -> None:
        with self._lock:
            if self._fault is None:
                self._since = time.monotonic()
                log.warning(
                    "broker fault (%s): not ready; consuming paused until Redis accepts writes",
                    describe(exc),
                )
            self._fault = describe(exc)
            self._consecutive += 1
        metrics.BROKER_READY.set(0)

    def note_ok(self) -> None:
        with self._lock:
            if self._fault is not None:
                log.warning(
                    "broker answers writes again after %.1f s (%s); consuming resumes",
                    time.monotonic() - self._since,
                    self._fault,
                )
            self._fault = None
            self._consecutive = 0
        metrics.BROKER_READY.set(1)

    @property
    def ready(self) -> bool:
        return self._fault is None

    @property
    def fault(self) -> str | None:
        return self._fault

    def backoff_s(self) -> float:
        """How long to hold off before trying again: 0.25 s doubling, at most 5 s."""
        return min(0.25 * 2 ** max(self._consecutive - 1, 0), 5.0)


broker_state = BrokerState()


def exit_on_auth_failure(exc: BaseException) -> None:
    """Log why and end the process with code 2 (from any thread)."""
    log.critical(auth_failure_message(exc))
    logging.shutdown()
    os._exit(EXIT_USAGE)


class BrokerMonitor:
    """Probes Redis with a small expiring write every `interval_s` and keeps `broker_state`."""

    def __init__(
        self,
        client: redis.Redis,
        probe_key: str,
        *,
        interval_s: float = 2.0,
        on_auth_failure: Callable[[BaseException], None] = exit_on_auth_failure,
        state: BrokerState = broker_state,
    ) -> None:
        self._client = client
        self._probe_key = probe_key
        self._interval_s = interval_s
        self._on_auth_failure = on_auth_failure
        self._state = state
        self._stop = threading.Event()

    def probe(self) -> bool:
        try:
            self._client.set(self._probe_key, "1", px=int(self._interval_s * 3000))
        except redis.RedisError as exc:
            kind = classify(exc)
            if kind == "auth":
                self._on_auth_failure(exc)
            self._state.note_fault(exc)
            return False
        self._state.note_ok()
        return True

    def run(self) -> None:
        while not self._stop.is_set():
            self.probe()
            self._stop.wait(self._interval_s)

    def stop(self) -> None:
        self._stop.set()


def check_persistence(client: redis.Redis) -> list[str]:
    """Warnings about a broker that can lose or evict queued messages (logged, and returned).

    Managed Redis often refuses CONFIG: that is said at INFO and is no warning.
    """
    try:
        appendonly = client.config_get("appendonly").get("appendonly")
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.ResponseError as exc:
        log.info("could not read Redis's persistence settings (%s); not checked", exc)
        return []
    warnings: list[str] = []
    if appendonly != "yes":
        warnings.append(
            "Redis runs without an append-only file (appendonly no): a Redis restart loses "
            "every queued and unacknowledged request since the last snapshot, silently. "
            "Set `appendonly yes` (and `appendfsync everysec` or `always`)."
        )
    if policy and policy != "noeviction":
        warnings.append(
            f"Redis's maxmemory-policy is {policy}: under memory pressure Redis may evict queued "
            "messages, outcome records and delivery counts. Set `maxmemory-policy noeviction`."
        )
    for warning in warnings:
        log.warning(warning)
    return warnings


def guard_broker(settings: Settings, hostname: str) -> BrokerMonitor:
    """At worker start: credentials checked (exit 2 when refused), persistence read (WARNINGs).
    Returns the `BrokerMonitor` to run for the life of the worker."""
    client = make_redis(settings)
    try:
        client.ping()
        check_persistence(client)
    except redis.RedisError as exc:
        if classify(exc) == "auth":
            log.critical(auth_failure_message(exc))
            # Celery's worker turns SystemExit into its exit code.
            raise SystemExit(EXIT_USAGE) from None
        # Transient: the consumer waits for Redis; the monitor reports not ready.
        broker_state.note_fault(exc)
    return BrokerMonitor(client, Keys(settings.grants_key_prefix).probe(hostname))
