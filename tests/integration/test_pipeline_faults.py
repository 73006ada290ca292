"""A broker fault met inside a pipeline is still a broker fault.

redis-py rewrites the reply of a command that failed in a pipeline or MULTI ("Command # 1
(ZADD …) of pipeline caused error: NOREPLICAS …"); kombu records every delivery in such a
pipeline. Read as anything but `NOREPLICAS`, a message taken during a failover would be
dead-lettered as undeliverable instead of being kept and put back.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from grant_worker.tasks.broker_faults import classify, describe
from tests.local_redis import RedisServer


def test_noreplicas_inside_a_pipeline_is_transient(tmp_path: Path) -> None:
    # A primary that refuses writes without a replica: what a demoted primary answers.
    server = RedisServer(tmp_path, extra_args=["--min-replicas-to-write", "1"]).start()
    try:
        client = redis.Redis(port=server.port)
        pipe = client.pipeline(transaction=True)
        pipe.zadd("unacked_index", {"tag": 1.0}).hset("unacked", "tag", "message")
        with pytest.raises(redis.ResponseError) as caught:
            pipe.execute()
        assert "of pipeline caused error" in str(caught.value)
        assert classify(caught.value) == "transient"
        assert describe(caught.value) == "ResponseError: NOREPLICAS"
    finally:
        server.stop()


def test_a_data_error_inside_a_pipeline_stays_no_broker_fault(redis_client: redis.Redis) -> None:
    key = "test-pipeline-faults:a-string"
    redis_client.set(key, "x", ex=60)
    pipe = redis_client.pipeline(transaction=True)
    pipe.lpush(key, "item")
    with pytest.raises(redis.ResponseError) as caught:
        pipe.execute()
    assert classify(caught.value) is None
