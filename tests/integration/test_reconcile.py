"""After the master changes, a worker puts right what Redis says it holds (a real Redis; the
master's change is the reconciler being told of another run id before)."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from grant_worker.tasks.fleet import Identity
from grant_worker.tasks.keys import Keys
from grant_worker.worker.process.broker.qos import owner_mark
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
    m = owner_mark(me)
    now = time.time()
    # Rejected through a dead channel: Redis still has it held by this worker.
    redis_client.zadd(
        keys.unacked_index,
        {f"{m}stray-old": now - 30, f"{m}running": now - 30, f"{m}just-delivered": now},
    )
    redis_client.hset(keys.unacked, f"{m}running", '["as recorded"]')
    memory = [Held(f"{m}running", '["r"]'), Held(f"{m}lost", '["m", "", "grants"]')]
    restored: list[str] = []
    reconciler = _reconciler(redis_client, keys, me, memory, restored)

    assert reconciler.check() == 0, "the first master seen is no change"
    assert restored == []

    reconciler._master = "the-run-id-of-the-demoted-primary"
    assert reconciler.check() == 1
    # Not in memory and delivered long enough ago: back to the queue. A tag delivered in the
    # last RECENT_S may be on its way into Celery's memory: left alone.
    assert restored == [f"{m}stray-old"]
    assert redis_client.hget(keys.unacked, f"{m}lost") == '["m", "", "grants"]'
    assert redis_client.zscore(keys.unacked_index, f"{m}lost") is not None
    assert redis_client.hget(keys.unacked, f"{m}running") == '["as recorded"]', (
        "only what it lacked"
    )


def test_without_a_change_of_master_nothing_is_touched(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    me = Identity.new("steady@test")
    stray = owner_mark(me) + "someone-elses-business"
    redis_client.zadd(keys.unacked_index, {stray: time.time() - 10 * RECENT_S})
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
        stray = owner_mark(me) + "stray-old"
        client.zadd(keys.unacked_index, {stray: time.time() - 30})
        restored: list[str] = []
        reconciler = _reconciler(client, keys, me, [], restored)
        reconciler.prime()
        server.restart()  # a new run id, as a promoted replica has; the data stays
        assert reconciler.check() == 1
        assert restored == [stray]
    finally:
        server.stop()
