"""Taking a message off the queue and acknowledging it, through the worker's own transport on a
real Redis: what each leaves behind (kombu's record under the worker's mark, the taking list, the
delivery count), that a count Redis refuses never stops the record, and that a survivor puts
back what a killed worker held exactly once, whichever record it finds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks.fleet import Identity
from grant_worker.tasks.keys import Keys
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.process.app import create_app
from grant_worker.worker.process.broker import qos
from grant_worker.worker.process.recovery import Recovery, kombu_restore

ME = Identity("taker@test", "b1")
TTL_S = 600


@pytest.fixture
def taker(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A channel of this process, working as the worker `ME`; `take()` delivers one message."""
    monkeypatch.setattr(qos, "_tracking", None)
    monkeypatch.setattr(qos, "_deliveries_ttl_s", None)
    qos.track_as(ME, Keys(settings.grants_key_prefix), deliveries_ttl_s=TTL_S)
    connection = create_app(settings).connection_for_write()
    channel = connection.default_channel
    received: list[Any] = []
    channel.basic_consume(settings.grants_queue, False, received.append, "taker")
    # What kombu's poller does before the first BRPOP: give the client its own connection.
    channel.client.connection = channel.client.connection_pool.get_connection()

    def take() -> Any:
        channel._brpop_start(timeout=5)
        channel._brpop_read()
        return received.pop()

    channel.take = take
    yield channel
    connection.release()


def submit(settings: Settings) -> str:
    with GrantClient(settings) as client:
        return client.submit({"grant": {"client_id": "svc-taken", "audience": "https://api/"}})


def test_a_taken_message_is_recorded_held_counted_and_out_of_the_taking_list(
    settings: Settings, redis_client: redis.Redis, taker: Any
) -> None:
    keys = Keys(settings.grants_key_prefix)
    task_id = submit(settings)
    message = taker.take()
    tag = message.delivery_tag
    assert redis_client.hexists(keys.unacked, tag)
    assert redis_client.zscore(keys.unacked_index, tag) is not None
    assert tag.startswith(qos.owner_mark(ME))
    assert qos.owned_tags(redis_client, keys, ME) == [tag]
    assert not redis_client.exists(keys.taking(str(ME)))
    assert qos.delivery_count(message) == 1
    assert redis_client.get(keys.deliveries(task_id)) == "1"
    assert 0 < redis_client.ttl(keys.deliveries(task_id)) <= TTL_S

    message.ack()
    assert not redis_client.hexists(keys.unacked, tag)
    assert qos.owned_tags(redis_client, keys, ME) == []


def test_a_redelivery_counts_on_and_its_count_lives_afresh(
    settings: Settings, redis_client: redis.Redis, taker: Any
) -> None:
    keys = Keys(settings.grants_key_prefix)
    task_id = submit(settings)
    redis_client.set(keys.deliveries(task_id), 2, ex=5)
    message = taker.take()
    assert qos.delivery_count(message) == 3
    assert redis_client.ttl(keys.deliveries(task_id)) > 5


def test_a_count_redis_refuses_leaves_the_message_recorded_and_counting_to_the_consumer(
    settings: Settings, redis_client: redis.Redis, taker: Any
) -> None:
    keys = Keys(settings.grants_key_prefix)
    task_id = submit(settings)
    redis_client.rpush(keys.deliveries(task_id), "damaged")  # not a counter at all
    message = taker.take()
    assert qos.delivery_count(message) is None
    assert redis_client.hexists(keys.unacked, message.delivery_tag)
    assert not redis_client.exists(keys.taking(str(ME)))


def test_an_ack_cut_short_after_its_first_command_leaves_nothing_to_restore(
    settings: Settings, redis_client: redis.Redis, taker: Any
) -> None:
    # An ack is a plain pipeline, not MULTI/EXEC: a connection lost after the hash entry went
    # leaves the index entry behind. Restoring it (the visibility timeout, a survivor) must put
    # nothing back on the queue, and clear it.
    keys = Keys(settings.grants_key_prefix)
    submit(settings)
    tag = taker.take().delivery_tag
    redis_client.hdel(keys.unacked, tag)  # the ack's first command, and no more
    taker.qos.restore_by_tag(tag)
    assert redis_client.llen(settings.grants_queue) == 0
    assert qos.owned_tags(redis_client, keys, ME) == []


def test_a_killed_worker_s_messages_go_back_exactly_once_from_wherever_it_left_them(
    settings: Settings, redis_client: redis.Redis, taker: Any
) -> None:
    # Killed holding: two recorded messages (one already put back by the visibility timeout
    # meanwhile), one moved into its taking list and not yet recorded, and one recorded by the
    # earlier release, in its held set under an unmarked tag.
    keys = Keys(settings.grants_key_prefix)
    queue = settings.grants_queue
    for _ in range(4):
        submit(settings)
    recorded = [taker.take().delivery_tag for _ in range(2)]
    redis_client.brpoplpush(queue, keys.taking(str(ME)))
    legacy = redis_client.rpop(queue)
    assert legacy is not None and redis_client.llen(queue) == 0
    redis_client.hset(keys.unacked, "unmarked", json.dumps([json.loads(legacy), "", queue]))
    redis_client.zadd(keys.unacked_index, {"unmarked": time.time()})
    redis_client.sadd(keys.held(str(ME)), "unmarked")
    app = create_app(settings)
    kombu_restore(app)(recorded[0])  # what the visibility timeout does, through another channel
    assert redis_client.llen(queue) == 1

    survivor = Recovery(
        redis_client,
        keys,
        me=Identity("survivor@test", "b2"),
        restore_by_tag=kombu_restore(app),
        queue=queue,
    )
    assert survivor.recover(ME) == 3
    assert redis_client.llen(queue) == 4
    assert survivor.recover(ME) == 0
    assert redis_client.llen(queue) == 4
    assert redis_client.hlen(keys.unacked) == 0 and redis_client.zcard(keys.unacked_index) == 0
    assert not redis_client.exists(keys.taking(str(ME)), keys.held(str(ME)))
    ids = sorted(json.loads(item)["headers"]["id"] for item in redis_client.lrange(queue, 0, -1))
    assert len(set(ids)) == 4
