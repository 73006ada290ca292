"""The delivery ledger on a real Redis: a request that goes back to the queue is not a delivery."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from grant_worker.tasks.delivery.ledger import DeliveryLedger
from grant_worker.tasks.delivery.locks import RequestLocks
from grant_worker.tasks.errors import ReturnToQueue
from grant_worker.tasks.handler import GrantHandler
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.outcomes.recorder import OutcomeRecorder


def test_a_delivery_taken_back_does_not_count_towards_poison(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    ledger = DeliveryLedger(redis_client, Keys(key_prefix), ttl_s=60)
    assert ledger.count_delivery("r1") == 1
    ledger.uncount_delivery("r1")
    assert ledger.count_delivery("r1") == 1
    assert ledger.count_delivery("r1") == 2


def test_taking_back_a_delivery_never_goes_below_zero(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    ledger = DeliveryLedger(redis_client, Keys(key_prefix), ttl_s=60)
    ledger.uncount_delivery("never-counted")
    assert ledger.count_delivery("never-counted") == 1


def test_a_clean_refusal_takes_back_only_the_mark_its_own_send_set(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    ledger = DeliveryLedger(redis_client, Keys(key_prefix), ttl_s=60)
    assert ledger.mark_sending("r1") is True
    ledger.mark_refused("r1")
    assert not ledger.was_sent("r1")  # a 409 after this is someone else's grant


def test_a_lost_reply_survives_later_clean_refusals(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    ledger = DeliveryLedger(redis_client, Keys(key_prefix), ttl_s=60)
    ledger.mark_sending("r1")
    ledger.mark_lost("r1")
    assert ledger.mark_sending("r1") is False  # the earlier state is kept
    ledger.mark_refused("r1")
    assert ledger.sent_state("r1") == "lost"


def test_a_send_cut_short_by_a_crash_stays_possibly_sent(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    ledger = DeliveryLedger(redis_client, Keys(key_prefix), ttl_s=60)
    ledger.mark_sending("r1")  # and the process dies before any answer
    assert DeliveryLedger(redis_client, Keys(key_prefix), ttl_s=60).sent_state("r1") == "sending"


class _WaitingProvisioner:
    """Stands in for a provisioner whose fleet must wait (an open breaker, no fleet slot soon)."""

    def provision(self, *args: Any, **kwargs: Any) -> Any:
        raise ReturnToQueue("breaker open", delay_s=1.0)


def test_the_delivery_counted_at_receipt_by_task_id_is_taken_back_on_return_to_queue(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    # The count moved from the handler (by request id) to the task's first act (by task id):
    # the handler's take-back must hit that same key, even when the request names its own id.
    keys = Keys(key_prefix)
    ledger = DeliveryLedger(redis_client, keys, ttl_s=60)
    handler = GrantHandler(
        provisioner=_WaitingProvisioner(),  # type: ignore[arg-type]
        revoker=_WaitingProvisioner(),  # type: ignore[arg-type]
        recorder=OutcomeRecorder(redis_client, keys, record_ttl_s=60, stream_maxlen=0),
        ledger=ledger,
        locks=RequestLocks(redis_client, keys, ttl_s=10),
        max_deliveries=3,
    )
    ledger.count_delivery("task-7")
    request = {"request_id": "own-id-7", "grant": {"client_id": "c", "audience": "a"}}
    with pytest.raises(ReturnToQueue):
        handler.handle(request, fallback_id="task-7")
    assert ledger.deliveries("task-7") == 0
    assert redis_client.xlen(keys.results) == 0
