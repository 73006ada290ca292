"""The per-batch ledger moves with the outcome recorder and the producer, atomically, on the real
Redis: each request counted once, in one state, whatever is recorded or enqueued again."""

from __future__ import annotations

import time
from typing import Any

import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks.messages.models import ErrorInfo, Outcome, utc_timestamp
from grant_worker.tasks.outcomes.batches import list_batches, read_batch
from grant_worker.tasks.outcomes.recorder import make_recorder
from grant_worker.worker.client.grant_client import GrantClient

API = "https://api.example.com/"


def outcome(request_id: str, batch_id: str, status: str, **fields: Any) -> Outcome:
    now = utc_timestamp()
    return Outcome(
        request_id=request_id,
        batch_id=batch_id,
        status=status,  # type: ignore[arg-type]
        received_at=now,
        finished_at=now,
        **fields,
    )


def request(request_id: str, batch_id: str) -> dict[str, Any]:
    grant = {"client_id": "svc", "audience": API}
    return {"request_id": request_id, "batch_id": batch_id, "grant": grant}


def test_each_request_is_counted_once_in_the_state_it_ended_in(
    settings: Settings, redis_client: redis.Redis
) -> None:
    with GrantClient(settings) as client:
        client.submit_many([request(f"r{i}", "B") for i in range(4)])
        client.submit_many([request("r0", "B")])  # enqueued again: still one request
        view = read_batch(client.redis, client.keys, "B")
        assert view is not None and (view.total, view.queued) == (4, 4)

        recorder = make_recorder(settings, client.redis)
        assert recorder.record(outcome("r0", "B", "created"))
        assert not recorder.record(outcome("r0", "B", "created"))  # a redelivery's: ignored
        differs = {"scope": {"missing": ["a"], "extra": []}}
        assert recorder.record(outcome("r1", "B", "exists", differences=differs))
        error = ErrorInfo(code="not_found", message="no such API")
        assert recorder.record(outcome("r2", "B", "failed", error=error), original={})

        view = read_batch(client.redis, client.keys, "B")
        assert view is not None
        assert (view.created, view.exists_differs, view.failed, view.queued) == (1, 1, 1, 1)
        assert (view.total, view.finished, view.pending) == (4, 3, 1)

        # A replay (record forgotten, enqueued again, ended again) moves the request, not adds.
        recorder.forget("r2")
        client.submit_many([request("r2", "B")])
        assert recorder.record(outcome("r2", "B", "created"))
        view = read_batch(client.redis, client.keys, "B")
        assert view is not None
        assert (view.total, view.created, view.failed, view.queued) == (4, 2, 0, 1)


def test_a_withdrawal_records_nothing_when_a_worker_took_the_message_first(
    settings: Settings, redis_client: redis.Redis
) -> None:
    with GrantClient(settings) as client:
        client.submit_many([request("w1", "W")])
        (item,) = redis_client.lrange(settings.grants_queue, 0, -1)
        redis_client.rpop(settings.grants_queue)  # as a worker's BRPOP would
        recorder = make_recorder(settings, client.redis)
        cancelled = outcome("w1", "W", "rejected", error=ErrorInfo(code="cancelled", message="x"))
        assert not recorder.record(cancelled, original={}, withdraw=item)
        assert recorder.recorded("w1") is None
        view = read_batch(client.redis, client.keys, "W")
        assert view is not None and (view.cancelled, view.queued) == (0, 1)


def test_batches_are_listed_by_latest_activity(settings: Settings) -> None:
    with GrantClient(settings) as client:
        client.submit_many([request("a1", "older")])
        time.sleep(0.01)
        client.submit_many([request("b1", "newer")])
        assert [view.batch_id for view in list_batches(client.redis, client.keys, 10)] == [
            "newer",
            "older",
        ]
        assert read_batch(client.redis, client.keys, "unknown") is None
