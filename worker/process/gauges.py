"""Gauges read at scrape time: the state of the queue and streams, and this process's work.

Counters and histograms of the work live in `tasks.metrics`; these gauges are read from Redis
(and from Celery's worker state) when `/metrics` is scraped, so they are never stale and cost
nothing between scrapes. When Redis does not answer, the Redis gauges are left out of that
scrape (absent, not zero) and `grants_redis_up` is 0.

The queue and streams are the fleet's, not a worker's: were every worker to serve them, a
`sum()` over workers would count them once per worker. Only the fleet's reporter
(`tasks.fleet.fleet_reporter`, the live worker whose identity sorts first) serves them, and says
so with `grants_fleet_reporter 1`; the others serve 0 and leave the fleet gauges out.

The pace's limit/remaining/pause and the breaker's state are set by `tasks.flow.pace` and
`tasks.flow.breaker` as they change; they appear on the same page because everything uses the
default registry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import redis
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from grant_worker.tasks.fleet import Identity, fleet_reporter
from grant_worker.tasks.keys import Keys
from grant_worker.worker.process.broker.qos import tracked_identity

log = logging.getLogger(__name__)


class QueueGauges(Collector):
    """This process's `grants_in_flight` and `grants_capacity`; on the fleet's reporter only,
    `grants_queue_depth`, `grants_dead_letters`, `grants_intake_pending` and
    `grants_intake_claimed`."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        queue: str,
        *,
        in_flight: Callable[[], int],
        capacity: int,
        identity: Callable[[], Identity | None] = tracked_identity,
    ) -> None:
        self._identity = identity
        self._client = client
        self._keys = keys
        self._queue = queue
        self._in_flight = in_flight
        self._capacity = capacity

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield _gauge(
            "grants_in_flight", "Requests this worker process is working on", self._in_flight()
        )
        yield _gauge(
            "grants_capacity", "Requests this worker process may work on at once", self._capacity
        )
        try:
            reporter = self._is_reporter()
            if reporter:
                depth, dead, intake, pending = self._read_redis()
        except redis.RedisError as exc:
            log.debug("gauges: Redis did not answer (%s)", type(exc).__name__)
            yield _gauge("grants_redis_up", "1 when Redis answered this scrape", 0)
            return
        yield _gauge("grants_redis_up", "1 when Redis answered this scrape", 1)
        yield _gauge(
            "grants_fleet_reporter",
            "1 on the one worker that serves the fleet-wide gauges (queue, dead letters, intake)",
            1 if reporter else 0,
        )
        if not reporter:
            return
        yield _gauge("grants_queue_depth", "Messages waiting on the Celery queue", depth)
        yield _gauge("grants_dead_letters", "Entries on the dead-letter stream", dead)
        yield _gauge(
            "grants_intake_pending",
            "Intake stream entries not yet moved onto the queue (waiting or being moved)",
            intake,
        )
        yield _gauge(
            "grants_intake_claimed",
            "Intake entries read by a bridge and not yet acknowledged",
            pending,
        )

    def _is_reporter(self) -> bool:
        reporter = fleet_reporter(self._client, self._keys)
        if reporter is None:
            # No worker has beaten yet (a fleet starting up): serve rather than leave a gap.
            return True
        me = self._identity()
        return me is not None and str(me) == reporter

    def _read_redis(self) -> tuple[int, int, int, int]:
        pipe = self._client.pipeline(transaction=False)
        pipe.llen(self._queue)
        pipe.xlen(self._keys.dead)
        pipe.xlen(self._keys.intake)
        depth, dead, intake = pipe.execute()
        try:
            summary: Any = self._client.xpending(self._keys.intake, self._keys.intake_group)
            pending = int(summary.get("pending", 0)) if isinstance(summary, dict) else 0
        except redis.ResponseError:  # no group yet: nothing claimed
            pending = 0
        return int(depth), int(dead), int(intake), pending


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


_registered: QueueGauges | None = None


def register_gauges(gauges: QueueGauges) -> None:
    """Put `gauges` on the default registry, replacing any earlier one of this process."""
    global _registered
    if _registered is not None:
        REGISTRY.unregister(_registered)
    REGISTRY.register(gauges)
    _registered = gauges
