"""After the master changes, a worker puts right what Redis says it holds (a real Redis; the
master's change is the reconciler being told of another run id before)."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from grant_worker.tasks.fleet import Identity
from grant_worker.tasks.keys import Keys
from grant_worker.worker.process.reconcile import RECENT_S, Held, Reconciler
from tests.local_redis import RedisServer


def _reconciler(
    client: redis.Redis, keys: Keys, me: Identity, memory: list[Held], restored: list[str]
) -> Reconciler:
    return Reconciler(
        client,
        keys,
        me=me,
        restore_by_tag=restored.append,
        window_s=60.0,
        in_memory=lambda: memory,
    )


def test_after_a_new_master_what_redis_holds_for_no_one_goes_back_and_what_it_lost_is_recorded(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    me = Identity.new("reconcile@test")
    held = keys.held(str(me))
    now = time.time()
    # Rejected through a dead channel: Redis still has it held by this worker.
    redis_client.sadd(held, "stray-old", "running", "just-delivered")
    redis_client.zadd(
        keys.unacked_index, {"stray-old": now - 30, "running": now - 30, "just-delivered": now}
    )
    redis_client.hset(keys.unacked, "running", '["as recorded"]')
    memory = [Held("running", '["r"]'), Held("lost-by-the-failover", '["m", "", "grants"]')]
    restored: list[str] = []
    reconciler = _reconciler(redis_client, keys, me, memory, restored)

    assert reconciler.check() == 0, "the first master seen is no change"
    assert restored == []

    reconciler._master = "the-run-id-of-the-demoted-primary"
    assert reconciler.check() == 1
    # Not in memory and delivered long enough ago: back to the queue. A tag delivered in the
    # last RECENT_S may be on its way into Celery's memory: left alone.
    assert restored == ["stray-old"]
    assert redis_client.hget(keys.unacked, "lost-by-the-failover") == '["m", "", "grants"]'
    assert redis_client.sismember(held, "lost-by-the-failover")
    assert redis_client.zscore(keys.unacked_index, "lost-by-the-failover") is not None
    assert redis_client.hget(keys.unacked, "running") == '["as recorded"]', "only what it lacked"


def test_without_a_change_of_master_nothing_is_touched(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    me = Identity.new("steady@test")
    redis_client.sadd(keys.held(str(me)), "someone-elses-business")
    redis_client.zadd(keys.unacked_index, {"someone-elses-business": time.time() - 10 * RECENT_S})
    restored: list[str] = []
    reconciler = _reconciler(redis_client, keys, me, [], restored)
    for _ in range(3):
        assert reconciler.check() == 0
    assert restored == []


def test_a_master_that_changes_before_the_first_sweep_is_reconciled_too(
    tmp_path: Path, key_prefix: str
) -> None:
    # A worker that meets a failover a second after it started: the master its first sweep
    # sees is already the new one. Noted at start, it is a change all the same.
    server = RedisServer(tmp_path).start()
    try:
        client = redis.Redis(port=server.port, decode_responses=True)
        keys = Keys(key_prefix)
        me = Identity.new("reconcile@test")
        client.sadd(keys.held(str(me)), "stray-old")
        client.zadd(keys.unacked_index, {"stray-old": time.time() - 30})
        restored: list[str] = []
        reconciler = _reconciler(client, keys, me, [], restored)
        reconciler.prime()
        server.restart()  # a new run id, as a promoted replica has; the data stays
        assert reconciler.check() == 1
        assert restored == ["stray-old"]
    finally:
        server.stop()
