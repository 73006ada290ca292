"""The recovery sweep on a real Redis: a live worker is left alone, a lapsed one is restored by
exactly one survivor, two live workers under one host name leave each other alone, and a
restarted worker's previous life counts as dead as soon as its process is gone, and a message a
worker took but had not recorded when it died goes back. The kombu restore path itself runs in
tests/reliability/test_recovery_in_seconds.py with real worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks.fleet import Identity, beat
from grant_worker.tasks.keys import Keys
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.process.app import create_app
from grant_worker.worker.process.broker.qos import owner_mark
from grant_worker.worker.process.recovery import Recovery
from grant_worker.worker.testing import settings_env


def held(client: redis.Redis, keys: Keys, identity: Identity, *tags: str) -> None:
    """`identity` holds `tags` unacknowledged: in kombu's index, under its mark."""
    client.zadd(keys.unacked_index, {marked(identity, tag): time.time() for tag in tags})


def marked(identity: Identity, tag: str) -> str:
    return owner_mark(identity) + tag


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
    assert sorted(restored) == sorted(marked(dead, f"t{n}") for n in range(50))
    assert not redis_client.exists(keys.held(str(dead)))
    assert str(dead) not in redis_client.smembers(keys.workers)


def test_two_live_workers_under_one_host_name_keep_their_messages(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    # Two `grants worker` on one machine without --hostname: both are `celery@host`. Were
    # heartbeats keyed by host name, each would overwrite the other's, take the other for dead
    # and put its messages back while they run, every sweep.
    keys = Keys(key_prefix)
    first, second = Identity("same@test", "b1"), Identity("same@test", "b2")
    beat(redis_client, keys, first, {}, ttl_s=30)
    beat(redis_client, keys, second, {}, ttl_s=30)
    held(redis_client, keys, first, "t1")
    held(redis_client, keys, second, "t2")
    restored: list[str] = []
    assert Recovery(redis_client, keys, me=first, restore_by_tag=restored.append).sweep() == 0
    assert Recovery(redis_client, keys, me=second, restore_by_tag=restored.append).sweep() == 0
    assert restored == []


def test_a_previous_life_whose_process_is_gone_counts_as_dead_before_its_beat_lapses(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    # A worker restarted under its old name: the old process is gone from this process
    # space, so its messages come back at once instead of after the heartbeat's lapse.
    keys = Keys(key_prefix)
    before, after = Identity("same@test", "old"), Identity("same@test", "new")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    beat(redis_client, keys, before, {}, ttl_s=30)
    # The beat as the old process wrote it (`beat` records the writer's own pid).
    raw = json.loads(str(redis_client.get(keys.heartbeat(str(before)))))
    redis_client.set(keys.heartbeat(str(before)), json.dumps({**raw, "pid": gone.pid}), ex=30)
    held(redis_client, keys, before, "t1")
    beat(redis_client, keys, after, {}, ttl_s=30)
    restored: list[str] = []
    assert Recovery(redis_client, keys, me=after, restore_by_tag=restored.append).sweep() == 1
    assert restored == [marked(before, "t1")]


def test_a_beat_from_another_process_space_waits_for_its_lapse(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    # Another container (or machine) with the same host name and a pid unknown here: its
    # process numbers mean nothing in this space, so only the lapse of its beat counts.
    keys = Keys(key_prefix)
    other, me = Identity("same@test", "other"), Identity("same@test", "me")
    redis_client.set(
        keys.heartbeat(str(other)),
        json.dumps({"identity": str(other), "space": "another-kernel/pid:[1]", "pid": 999999}),
        ex=30,
    )
    redis_client.sadd(keys.workers, str(other))
    held(redis_client, keys, other, "t1")
    restored: list[str] = []
    assert Recovery(redis_client, keys, me=me, restore_by_tag=restored.append).sweep() == 0
    assert restored == []


# A worker process that dies right after taking a message off the queue, before kombu records
# it as unacknowledged: the narrowest window of a SIGKILL. `os._exit` skips every handler.
DIES_AFTER_TAKING = """
import os, sys
from grant_worker.config.settings import Settings
from grant_worker.tasks.fleet import Identity
from grant_worker.tasks.keys import Keys
from grant_worker.worker.process.app import create_app
from grant_worker.worker.process.broker.qos import track_as

settings = Settings()
track_as(Identity("taker@test", "b1"), Keys(settings.grants_key_prefix))
app = create_app(settings)
connection = app.connection_for_write()
channel = connection.default_channel
channel.basic_consume(settings.grants_queue, False, lambda message: None, "taker")
channel.connection._deliver = lambda payload, queue: os._exit(9)  # the transport
# What kombu's poller does before the first BRPOP: give the client its own connection.
channel.client.connection = channel.client.connection_pool.get_connection("_")
channel._brpop_start(timeout=5)
channel._brpop_read()
sys.exit(0)  # not reached
"""


def test_a_worker_killed_between_taking_and_recording_a_message_loses_nothing(
    settings: Settings, redis_client: redis.Redis, key_prefix: str
) -> None:
    # Taken with a plain BRPOP, the message would be off the queue and nowhere else: the
    # taking list is what a survivor finds it in.
    keys = Keys(key_prefix)
    with GrantClient(settings) as client:
        client.submit({"grant": {"client_id": "svc-taken", "audience": "https://api/"}})
    assert redis_client.llen(settings.grants_queue) == 1
    died = subprocess.run(
        [sys.executable, "-c", DIES_AFTER_TAKING],
        env={**os.environ, **settings_env(settings)},
        capture_output=True,
        timeout=60,
    )
    assert died.returncode == 9, died.stderr.decode()[-2000:]
    taker = Identity("taker@test", "b1")
    assert redis_client.llen(settings.grants_queue) == 0
    assert redis_client.llen(keys.taking(str(taker))) == 1
    survivor = Recovery(
        redis_client,
        keys,
        me=Identity("s@test", "b2"),
        restore_by_tag=lambda tag: None,
        queue=settings.grants_queue,
    )
    assert survivor.recover(taker) == 1
    assert redis_client.llen(settings.grants_queue) == 1
    assert not redis_client.exists(keys.taking(str(taker)))


def test_a_late_reject_through_a_channel_whose_connection_closed_is_a_connection_error(
    settings: Settings,
) -> None:
    # Seen after a Redis restart: a task rejected (requeue) through the channel the consumer
    # had left, and kombu's AttributeError ended the worker ("Unrecoverable error"). Celery
    # logs a connection error there and the message stays unacknowledged for recovery.
    connection = create_app(settings).connection_for_write()
    channel = connection.default_channel
    channel.connection.client = None  # what the restart left: the transport without its client
    with pytest.raises(redis.ConnectionError):
        channel.qos.restore_by_tag("tag-1")
    connection.release()
