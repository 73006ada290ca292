"""Prometheus metrics of the work. Exposed by `worker.metrics` when GRANTS_METRICS_PORT is set.

Defined at import on the default registry, as prometheus-client expects; they cost nothing
when nobody scrapes them.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
