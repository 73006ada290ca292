"""Prometheus metrics of the work, served by the worker's HTTP port (`worker.process.health`).

Defined at import on the default registry, as prometheus-client expects; they cost nothing
when nobody scrapes them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from grant_worker.tasks.messages.models import Outcome

OUTCOMES = Counter(
    "grants_outcomes_total",
    "Requests finished, by outcome status and error code",
    ["status", "code"],
)
TASK_SECONDS = Histogram(
    "grants_task_seconds", "Time from a request's receipt by a worker to its recorded outcome"
)
DUPLICATE_DELIVERIES = Counter(
    "grants_duplicate_deliveries_total",
    "Deliveries of requests whose outcome was already recorded (acknowledged without a call)",
)

# -- Management API client (tasks.auth0.api, tasks.provision, tasks.flow.pace) --

AUTH0_CALLS = Counter(
    "grants_auth0_calls_total",
    "HTTP calls to Auth0, by endpoint and HTTP status (network_error when no answer came)",
    ["endpoint", "status"],
)
AUTH0_CALL_SECONDS = Histogram(
    "grants_auth0_call_seconds",
    "Latency of one HTTP call to Auth0, by endpoint (failed calls included)",
    ["endpoint"],
)
AUTH0_RETRIES = Counter(
    "grants_auth0_retries_total",
    "Calls to Auth0 tried again, by reason (the error code that led to the retry)",
    ["reason"],
)
RATE_LIMITED = Counter(
    "grants_auth0_rate_limited_total", "429 answers from Auth0, by endpoint", ["endpoint"]
)
PACE_WAIT_SECONDS = Histogram(
    "grants_pace_wait_seconds",
    "Time a call waited for a slot of the fleet's shared pace",
    buckets=(0.0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
PACE_PAUSES = Counter(
    "grants_pace_pauses_total", "Fleet-wide pauses set after a 429 with a reset time"
)
RETURNED_TO_QUEUE = Counter(
    "grants_returned_to_queue_total",
    "Requests put back on the queue to wait (no slot soon, breaker open, shutting down)",
)

# -- outcome correctness and recovery --

RESOLVED_BY_LOOKUP = Counter(
    "grants_resolved_by_lookup_total",
    "Creates whose reply was lost and whose grant a lookup found equal to the request",
)
RECOVERED_MESSAGES = Counter(
    "grants_recovered_messages_total",
    "Unacknowledged messages of a worker whose heartbeat lapsed, put back on the queue",
)
ABANDONED_AT_SHUTDOWN = Counter(
    "grants_abandoned_at_shutdown_total",
    "Requests still in flight when the shutdown grace ran out, returned to the queue",
)

# -- flow control (tasks.flow.pace, tasks.flow.breaker) --

TENANT_LIMIT = Gauge(
    "grants_tenant_rate_limit", "The tenant's bucket size, from the last x-ratelimit-limit seen"
)
TENANT_REMAINING = Gauge(
    "grants_tenant_rate_remaining", "The last x-ratelimit-remaining seen from the tenant"
)
FLEET_RATE = Gauge(
    "grants_fleet_rate_per_second", "The rate the fleet paces its Management API calls at"
)
FLEET_PAUSE_UNTIL = Gauge(
    "grants_fleet_pause_until_timestamp_seconds",
    "Unix time until which a 429 paused the fleet (the last pause this worker set)",
)
BREAKER_OPEN = Gauge(
    "grants_breaker_open", "1 while the fleet's circuit breaker is open, by cause", ["cause"]
)

BROKER_READY = Gauge(
    "grants_broker_ready",
    "1 while Redis takes this worker's writes; 0 during a broker fault (OOM, READONLY, LOADING, "
    "connection lost): the worker stops consuming until it clears",
)
INTAKE_BRIDGE_ALIVE = Gauge(
    "grants_intake_bridge_alive", "1 while this worker's intake bridge runs its loop"
)
INTAKE_BRIDGE_RESTARTS = Counter(
    "grants_intake_bridge_restarts_total", "Intake bridge loops restarted after an exception"
)
REQUEUE_BACKOFFS = Counter(
    "grants_requeue_backoffs_total",
    "Deliveries that failed before an outcome was recorded and were requeued with a backoff",
)
EXPIRED = Counter("grants_expired_total", "Messages whose Celery `expires` had passed on receipt")


def count_outcome(outcome: Outcome) -> None:
    """One recorded outcome in `grants_outcomes_total`, wherever it was decided (the task's
    handler, or at receipt: refusals, the intake bridge's rejections, `expired`, `poison`)."""
    OUTCOMES.labels(outcome.status, outcome.error.code if outcome.error else "").inc()
