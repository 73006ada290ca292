"""The intake bridge moves plain-JSON entries onto the Celery queue, and takes over entries a
crashed bridge left pending."""

from __future__ import annotations

import json
from typing import Any

from grant_worker.config.settings import Settings
from grant_worker.tasks.keys import Keys
from grant_worker.worker.app import create_app
from grant_worker.worker.bridge import IntakeBridge


def queued_task_ids(redis_client: Any, queue: str) -> list[str]:
    return [json.loads(item)["headers"]["id"] for item in redis_client.lrange(queue, 0, -1)]


def bridge(settings: Settings, redis_client: Any, consumer: str, **kwargs: Any) -> IntakeBridge:
    keys = Keys(settings.grants_key_prefix)
    made = IntakeBridge(create_app(settings), redis_client, keys, consumer, **kwargs)
    made.ensure_group()
    return made


def test_an_entry_becomes_a_task_under_its_request_id_and_leaves_the_stream(
    settings: Settings, redis_client: Any
) -> None:
    keys = Keys(settings.grants_key_prefix)
    first = bridge(settings, redis_client, "b-1")
    envelope = {"request_id": "in-1", "grant": {"client_id": "c", "audience": "a"}}
    redis_client.xadd(keys.intake, {"request": json.dumps(envelope)})
    assert first.pump_once(block_ms=100) == 1
    assert queued_task_ids(redis_client, settings.grants_queue) == ["in-1"]
    assert redis_client.xlen(keys.intake) == 0


def test_entries_a_dead_bridge_left_pending_are_claimed_by_another(
    settings: Settings, redis_client: Any
) -> None:
    keys = Keys(settings.grants_key_prefix)
    bridge(settings, redis_client, "setup")  # creates the group
    redis_client.xadd(keys.intake, {"request": json.dumps({"grant": {}})})
    # A bridge reads the entry, then dies before enqueueing and acknowledging it.
    redis_client.xreadgroup(keys.intake_group, "dead-bridge", {keys.intake: ">"}, count=10)
    survivor = bridge(settings, redis_client, "b-2", claim_idle_ms=0)
    assert survivor.pump_once(block_ms=100) == 1
    (task_id,) = queued_task_ids(redis_client, settings.grants_queue)
    assert task_id.startswith("intake-")
    assert redis_client.xpending(keys.intake, keys.intake_group)["pending"] == 0
