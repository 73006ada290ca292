"""The intake bridge moves plain-JSON entries onto the Celery queue, and takes over entries a
crashed bridge left pending."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from grant_worker.config.settings import Settings
from grant_worker.tasks.keys import Keys
from grant_worker.worker.process.app import create_app
from grant_worker.worker.process.intake_bridge import IntakeBridge


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


def test_a_restarted_bridge_takes_up_its_own_pending_entries_at_once(
    settings: Settings, redis_client: Any
) -> None:
    # Redis went away in the middle of a batch: the bridge had read entries it never enqueued.
    # Its restart takes them up at once: left to the 60 s claim meant for dead bridges, they
    # alone would take a Redis restart past two minutes.
    keys = Keys(settings.grants_key_prefix)
    restarted = bridge(settings, redis_client, "b-1")  # default claim_idle_ms: 60 s
    for n in range(3):
        envelope = {"request_id": f"in-{n}", "grant": {"client_id": "c", "audience": "a"}}
        redis_client.xadd(keys.intake, {"request": json.dumps(envelope)})
    redis_client.xreadgroup(keys.intake_group, "b-1", {keys.intake: ">"}, count=10)
    gone = redis_client.xadd(keys.intake, {"request": json.dumps({"grant": {}})})
    redis_client.xreadgroup(keys.intake_group, "b-1", {keys.intake: ">"}, count=10)
    redis_client.xdel(keys.intake, gone)  # trimmed away while pending: nothing to move
    assert restarted.pump_once(block_ms=100) == 3
    assert sorted(queued_task_ids(redis_client, settings.grants_queue)) == ["in-0", "in-1", "in-2"]
    assert redis_client.xpending(keys.intake, keys.intake_group)["pending"] == 0
    assert redis_client.xlen(keys.dead) == 0


def test_an_entry_claimed_more_than_max_claims_times_is_dead_lettered_not_handed_on(
    settings: Settings, redis_client: Any
) -> None:
    # An entry that kills a bridge would be claimed by every other worker's bridge 60 s later,
    # and kill it too: past `max_claims` it becomes a dead letter instead.
    keys = Keys(settings.grants_key_prefix)
    bridge(settings, redis_client, "setup")
    entry_id = redis_client.xadd(keys.intake, {"request": json.dumps({"grant": {}})})
    redis_client.xreadgroup(keys.intake_group, "bridge-1", {keys.intake: ">"}, count=10)
    for dead_bridge in ("bridge-2", "bridge-3"):  # each claimed it, then died
        redis_client.xclaim(keys.intake, keys.intake_group, dead_bridge, 0, [entry_id])
    survivor = bridge(settings, redis_client, "b-4", claim_idle_ms=0, max_claims=3)
    assert survivor.pump_once(block_ms=100) == 1
    assert queued_task_ids(redis_client, settings.grants_queue) == []
    (dead,) = [json.loads(f["dead"]) for _id, f in redis_client.xrange(keys.dead)]
    assert dead["request_id"] == f"intake-{entry_id}"
    assert "claimed 4 times" in dead["error"]["message"]
    assert redis_client.xlen(keys.intake) == 0


def test_a_hostile_entry_is_rejected_and_the_bridge_goes_on(
    settings: Settings, redis_client: Any
) -> None:
    keys = Keys(settings.grants_key_prefix)
    first = bridge(settings, redis_client, "b-1")
    redis_client.xadd(keys.intake, {"request": "[" * 1200 + "]" * 1200})
    redis_client.xadd(keys.intake, {"request": "x" * 70_000})
    good = {"request_id": "after-hostile", "grant": {"client_id": "c", "audience": "a"}}
    redis_client.xadd(keys.intake, {"request": json.dumps(good)})
    assert first.pump_once(block_ms=100) == 3
    assert queued_task_ids(redis_client, settings.grants_queue) == ["after-hostile"]
    messages = [
        json.loads(f["dead"])["error"]["message"] for _id, f in redis_client.xrange(keys.dead)
    ]
    assert any("nested 1200 deep" in message for message in messages)
    assert any("at most 65536 bytes" in message for message in messages)
    # The dead letter keeps a preview, not the 70 KB.
    assert all(len(f["dead"]) < 4096 for _id, f in redis_client.xrange(keys.dead))


def test_the_bridge_loop_restarts_after_any_exception_and_reports_itself_alive(
    settings: Settings, redis_client: Any
) -> None:
    keys = Keys(settings.grants_key_prefix)
    made = bridge(settings, redis_client, "b-1")
    failures = iter([RuntimeError("a bug"), None])
    real_pump = made.pump_once

    def flaky_pump(*, block_ms: int | None = None) -> int:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real_pump(block_ms=block_ms)

    made.pump_once = flaky_pump  # type: ignore[method-assign]
    thread = threading.Thread(target=made.run, daemon=True)
    thread.start()
    try:
        redis_client.xadd(keys.intake, {"request": json.dumps({"request_id": "r-1", "grant": {}})})
        deadline = time.monotonic() + 10
        while not queued_task_ids(redis_client, settings.grants_queue):
            assert time.monotonic() < deadline, "the bridge did not restart"
            time.sleep(0.05)
        assert made.alive()
    finally:
        made.stop()
        thread.join(timeout=5)
    assert not made.alive()
