"""The request lock and the grant lock on a real Redis: waits, lifetimes, renewal, and a lapsed
lock never released or renewed as someone else's."""

from __future__ import annotations

import time

import pytest
import redis

from grant_worker.tasks.delivery.locks import GrantBusy, GrantLocks, LockBusy, RequestLocks
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import CreateClientGrant

GRANT = CreateClientGrant.model_validate({"client_id": "svc-1", "audience": "https://api/"})


def test_a_second_holder_waits_then_gives_up_with_lock_busy(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    locks = RequestLocks(redis_client, Keys(key_prefix), ttl_s=5, wait_s=0.5)
    with locks.hold("r1"):
        started = time.monotonic()
        with pytest.raises(LockBusy), locks.hold("r1"):
            pass
        assert 0.4 < time.monotonic() - started < 3
    with locks.hold("r1"):
        pass


def test_a_held_request_lock_is_renewed_beyond_its_lifetime_and_released_after(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    locks = RequestLocks(redis_client, keys, ttl_s=0.6)
    with locks.hold("r1"):
        time.sleep(1.5)
        assert redis_client.exists(keys.lock("r1"))
    assert not redis_client.exists(keys.lock("r1"))


def test_a_lapsed_request_lock_is_not_released_as_the_new_holders(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    locks = RequestLocks(redis_client, keys, ttl_s=30)
    with locks.hold("r1"):
        # Lapsed (its holder lost Redis, say), and taken by another delivery meanwhile.
        redis_client.set(keys.lock("r1"), "someone-else")
    assert redis_client.get(keys.lock("r1")) == "someone-else"


def test_a_grant_lock_waits_lapses_between_calls_and_is_never_renewed_as_someone_elses(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    locks = GrantLocks(redis_client, keys, ttl_s=0.3)
    with locks.hold(GRANT, wait_s=1) as held:
        with pytest.raises(GrantBusy), locks.hold(GRANT, wait_s=0.1):
            pass
        held.renew()
        time.sleep(0.5)
        # Lapsed: another request may hold it now, and renewing says so.
        with locks.hold(GRANT, wait_s=0.1), pytest.raises(GrantBusy):
            held.renew()
    with locks.hold(GRANT, wait_s=0.1):
        pass
