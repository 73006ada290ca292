"""The delivery ledger on a real Redis: a request that goes back to the queue is not a delivery."""

from __future__ import annotations

import redis

from grant_worker.tasks.delivery.ledger import DeliveryLedger
from grant_worker.tasks.keys import Keys


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
