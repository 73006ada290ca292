"""The recovery sweep on a real Redis: a live worker is left alone, a lapsed one is restored by
exactly one survivor, a restarted worker's previous life counts as dead. The kombu restore path
itself runs in tests/reliability/test_recovery_in_seconds.py with real worker processes."""

from __future__ import annotations

import threading
import time

import redis

from grant_worker.tasks.keys import Keys
from grant_worker.worker.recovery import Identity, Recovery, beat


def held(client: redis.Redis, keys: Keys, identity: Identity, *tags: str) -> None:
    client.sadd(keys.held(str(identity)), *tags)


def test_a_live_worker_keeps_its_messages(redis_client: redis.Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    alive = Identity("alive@test", "b1")
    beat(redis_client, keys, alive, {}, ttl_s=30)
    held(redis_client, keys, alive, "t1")
    restored: list[str] = []
    survivor = Recovery(
        redis_client, keys, me=Identity("s@test", "b2"), restore_by_tag=restored.append
    )
    assert survivor.sweep() == 0
    assert restored == []


def test_a_lapsed_worker_is_restored_by_exactly_one_of_two_survivors(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    dead = Identity("dead@test", "b1")
    beat(redis_client, keys, dead, {}, ttl_s=0.2)
    held(redis_client, keys, dead, *(f"t{n}" for n in range(50)))
    time.sleep(0.3)
    restored: list[str] = []
    lock = threading.Lock()

    def restore(tag: str) -> None:
        time.sleep(0.001)  # both survivors sweep while the first is still restoring
        with lock:
            restored.append(tag)

    survivors = [
        Recovery(redis_client, keys, me=Identity(f"s{n}@test", "b"), restore_by_tag=restore)
        for n in range(2)
    ]
    threads = [threading.Thread(target=s.sweep) for s in survivors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(restored) == sorted(f"t{n}" for n in range(50))
    assert not redis_client.exists(keys.held(str(dead)))
    assert str(dead) not in redis_client.smembers(keys.workers)


def test_a_restarted_worker_s_previous_life_counts_as_dead(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    before, after = Identity("same@test", "old"), Identity("same@test", "new")
    beat(redis_client, keys, before, {}, ttl_s=30)
    held(redis_client, keys, before, "t1")
    beat(redis_client, keys, after, {}, ttl_s=30)  # same host name, same heartbeat key
    restored: list[str] = []
    assert Recovery(redis_client, keys, me=after, restore_by_tag=restored.append).sweep() == 1
    assert restored == ["t1"]
