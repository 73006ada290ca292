"""What keeps a request from failing on every delivery, on a real Redis: an outcome that
cannot be serialised is still recorded, and the watchdog notices a dead intake bridge."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import ErrorInfo, Outcome, utc_timestamp
from grant_worker.tasks.outcomes.recorder import OutcomeRecorder
from grant_worker.worker.process.watchdog import Watchdog
from tests.bad_requests import nested


def test_an_outcome_whose_metadata_cannot_be_serialised_is_recorded_without_it(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    # Metadata nested 998 deep that got past validation: the grant exists, and an outcome that
    # cannot be serialised must still be recorded, or the delivery is requeued without end.
    keys = Keys(key_prefix)
    recorder = OutcomeRecorder(redis_client, keys, record_ttl_s=60, stream_maxlen=0)
    stamp = utc_timestamp()
    outcome = Outcome.model_construct(
        request_id="deep-1",
        batch_id=None,
        status="failed",
        grant=None,
        error=ErrorInfo(code="upstream_error", message="x"),
        differences=None,
        attempts=1,
        received_at=stamp,
        finished_at=stamp,
        metadata=nested(5000),
    )
    assert recorder.record(outcome, original={"metadata": nested(5000)})
    recorded = recorder.recorded("deep-1")
    assert recorded is not None and recorded.metadata is None
    assert recorded.error is not None and "could not be serialised" in str(recorded.error.details)
    (dead,) = [json.loads(f["dead"]) for _id, f in redis_client.xrange(keys.dead)]
    assert "unserialisable" in dead["request"]


def test_the_watchdog_ends_a_worker_whose_intake_bridge_is_dead(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    calls: list[str] = []
    watchdog = Watchdog(
        redis_client,
        Keys(key_prefix),
        queue=f"{key_prefix}queue",
        capacity=4,
        hostname="w-1",
        interval_s=1.0,
        stall_after_s=60.0,
        on_stall=lambda: calls.append("stall"),
        bridge_alive=lambda: False,
    )
    assert watchdog.check() is True
    assert calls == ["stall"]
    beat: Any = json.loads(str(redis_client.get(Keys(key_prefix).heartbeat("w-1/-"))))
    assert beat["bridge_alive"] is False
    assert beat["broker_ready"] is True


def test_the_watchdog_never_ends_a_worker_that_is_shutting_down(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    # After SIGTERM the bridge stops and the consumer takes nothing, on purpose, while requests
    # finish within the grace. Taken for a dead bridge, it would end the worker with 70 and
    # cut the grace short: requests in flight would be cut off instead of finishing.
    queue = f"{key_prefix}queue"
    redis_client.rpush(queue, "waiting-1", "waiting-2")
    calls: list[str] = []
    watchdog = Watchdog(
        redis_client,
        Keys(key_prefix),
        queue=queue,
        capacity=4,
        hostname="w-1",
        interval_s=1.0,
        stall_after_s=0.05,
        on_stall=lambda: calls.append("stall"),
        bridge_alive=lambda: False,
        shutting_down=lambda: True,
    )
    assert watchdog.check() is False
    time.sleep(0.1)
    assert watchdog.check() is False
    assert calls == []
    assert redis_client.exists(Keys(key_prefix).heartbeat("w-1/-"))  # it still beats


def test_behind_sentinel_an_outcome_no_replica_has_is_not_taken_as_recorded(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    # The shared test Redis has no replica: what a demoted primary looks like to WAIT.
    keys = Keys(key_prefix)
    recorder = OutcomeRecorder(
        redis_client, keys, record_ttl_s=60, stream_maxlen=0, min_replicas=1, replica_wait_ms=50
    )
    stamp = utc_timestamp()
    outcome = Outcome(request_id="wait-1", status="rejected", received_at=stamp, finished_at=stamp)
    with pytest.raises(redis.ConnectionError, match="reached 0 of 1 replica"):
        recorder.record(outcome)
