"""The owners' readers on a real Redis: the register and heartbeats (`tasks.fleet`), the
breaker's and the pace's hashes, the batch ledgers and the bounded outcome windows, read as
their writers leave them."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks.fleet import (
    Identity,
    beat,
    forget,
    read_beats,
    registered,
    release,
)
from grant_worker.tasks.flow.breaker import Breaker, read_breaker
from grant_worker.tasks.flow.pace import read_pace
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import ErrorInfo, Outcome, utc_timestamp
from grant_worker.tasks.outcomes.batches import (
    read_batch,
    read_batch_rows,
    read_batches,
    recent_batch_ids,
)
from grant_worker.tasks.outcomes.recorder import make_recorder
from grant_worker.tasks.outcomes.windows import OutcomeWindows, dead_by_code, finished_per_s


def test_read_beats_gives_each_registered_worker_its_last_beat(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    live, lapsed = Identity("celery@box-1", "b2"), Identity("celery@box-1", "b1")
    facts = {"busy": 2, "capacity": 8, "queued": 5, "idle_s": 0.2, "stalled": False}
    beat(redis_client, keys, live, {**facts, "at": time.time()}, ttl_s=30)
    redis_client.sadd(keys.workers, str(lapsed))

    found = {b.identity: b for b in read_beats(redis_client, keys)}

    assert sorted(found) == ["celery@box-1/b1", "celery@box-1/b2"]
    now = time.time()
    current = found[str(live)]
    assert (current.hostname, current.busy, current.capacity, current.queued) == (
        "celery@box-1",
        2,
        8,
        5,
    )
    assert current.idle_s == 0.2 and not current.stalled and current.fresh(now, 30)
    gone = found[str(lapsed)]
    assert not gone.current and gone.at is None and not gone.fresh(now, 30)
    assert sorted(str(i) for i in registered(redis_client, keys)) == sorted(found)


def test_read_beats_keeps_the_beat_json_and_stays_within_its_limit(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    me = Identity("celery@box-2", "b1")
    beat(redis_client, keys, me, {"busy": 1, "at": 1.5}, ttl_s=30)
    raw = json.loads(str(redis_client.get(keys.heartbeat(str(me)))))
    # The format others read: the facts as given, and where the writer runs.
    assert {"busy", "at", "identity", "boot", "space", "pid"} <= set(raw)
    assert (raw["identity"], raw["boot"]) == ("celery@box-2/b1", "b1")
    redis_client.sadd(keys.workers, *(f"other@box/{n}" for n in range(30)))
    # An unreadable beat is no current beat.
    redis_client.set(keys.heartbeat("other@box/0"), "{not json")

    assert len(read_beats(redis_client, keys, limit=10)) == 10
    beats = {b.identity: b for b in read_beats(redis_client, keys)}
    assert len(beats) == 31 and not beats["other@box/0"].current
    assert beats[str(me)].at == 1.5


def test_release_and_forget_take_a_worker_out_of_the_register(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    first, second = Identity("a@test", "b1"), Identity("b@test", "b1")
    for identity in (first, second):
        beat(redis_client, keys, identity, {}, ttl_s=30)
        redis_client.sadd(keys.held(str(identity)), "t1")

    release(redis_client, keys, first)
    forget(redis_client, keys, second)

    assert registered(redis_client, keys) == []
    assert not redis_client.exists(keys.held(str(first)), keys.held(str(second)))
    # A released worker's beat lapses by itself; a forgotten one's goes at once.
    assert redis_client.exists(keys.heartbeat(str(first)))
    assert not redis_client.exists(keys.heartbeat(str(second)))


def test_read_breaker_tells_a_breaker_never_written_from_a_closed_one(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    assert not read_breaker(redis_client, keys).recorded

    Breaker(redis_client, keys).open("token_refused", "401 access_denied")
    opened = read_breaker(redis_client, keys)
    assert opened.recorded and opened.is_open and opened.cause == "token_refused"
    assert opened.message == "401 access_denied" and opened.since is not None

    Breaker(redis_client, keys).close()
    closed = read_breaker(redis_client, keys)
    assert closed.recorded and closed.state == "closed" and not closed.cause


def test_read_pace_says_whether_anything_was_learned(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    assert not read_pace(redis_client, keys).learned

    redis_client.hset(keys.pace, mapping={"pause": int((time.time() + 30) * 1_000_000)})
    paused = read_pace(redis_client, keys)
    assert not paused.learned and paused.pause_until is not None

    redis_client.hset(keys.pace, mapping={"limit": 50, "remaining": 3, "rate": 15})
    learned = read_pace(redis_client, keys)
    assert learned.learned and (learned.limit, learned.remaining, learned.rate) == (50, 3, 15.0)


def _recorder(redis_client: redis.Redis, redis_url: str, key_prefix: str, queue: str) -> Any:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, redis_url=redis_url, grants_key_prefix=key_prefix, grants_queue=queue
    )
    return make_recorder(settings, redis_client)


def _outcome(request_id: str, status: str, batch_id: str | None, code: str = "") -> Outcome:
    return Outcome(
        request_id=request_id,
        batch_id=batch_id,
        status=status,  # type: ignore[arg-type]
        error=ErrorInfo(code=code, message=f"{code} happened") if code else None,
        attempts=1,
        received_at=utc_timestamp(),
        finished_at=utc_timestamp(),
    )


def test_batch_readers_read_the_ledgers_the_recorder_writes(
    redis_client: redis.Redis, redis_url: str, key_prefix: str, queue_name: str
) -> None:
    keys = Keys(key_prefix)
    recorder = _recorder(redis_client, redis_url, key_prefix, queue_name)
    assert recorder.record(_outcome("r1", "created", "batch-a"))
    assert recorder.record(_outcome("r2", "failed", "batch-a", "not_found"), original={})
    assert recorder.record(_outcome("r3", "created", "batch-b"))

    assert set(recent_batch_ids(redis_client, keys, 10)) == {"batch-a", "batch-b"}
    assert recent_batch_ids(redis_client, keys, 1) in (["batch-a"], ["batch-b"])
    ledgers = read_batches(redis_client, keys, ["batch-a", "batch-b", "no-such-batch"])
    assert sorted(ledgers) == ["batch-a", "batch-b"]
    assert (ledgers["batch-a"].total, ledgers["batch-a"].created, ledgers["batch-a"].failed) == (
        2,
        1,
        1,
    )
    assert ledgers["batch-a"] == read_batch(redis_client, keys, "batch-a")
    assert read_batch_rows(redis_client, keys, "batch-a", 100) == {"r1": "created", "r2": "failed"}
    assert len(read_batch_rows(redis_client, keys, "batch-a", 1) or {}) == 1
    assert read_batch_rows(redis_client, keys, "no-such-batch", 100) is None
    assert read_batches(redis_client, keys, []) == {}


def test_outcome_windows_read_the_newest_outcomes_and_dead_letters(
    redis_client: redis.Redis, redis_url: str, key_prefix: str, queue_name: str
) -> None:
    keys = Keys(key_prefix)
    recorder = _recorder(redis_client, redis_url, key_prefix, queue_name)
    for n in range(5):
        assert recorder.record(_outcome(f"w{n}", "created", "batch-w"))
    assert recorder.record(_outcome("x1", "failed", "batch-x", "not_found"), original={})
    assert recorder.record(_outcome("x2", "rejected", None, "invalid_request"), original={})
    windows = OutcomeWindows(redis_client, keys)

    snapshot = windows.snapshot(queue_name, sample=10, window=3, batch_id="batch-x")
    assert (snapshot.depth, snapshot.in_flight, snapshot.window_full) == (0, 0, True)
    assert [o.request_id for o in snapshot.recent] == ["x2", "x1", "w4"]
    # The batch asked for comes whole, the others as their gist.
    assert snapshot.recent[1].outcome["error"]["code"] == "not_found"
    assert snapshot.recent[2].outcome == {
        "request_id": "w4",
        "status": "created",
        "batch_id": "batch-w",
    }

    dead = windows.matching(keys.dead, window=100, field_name="dead", code="not_found")
    assert [json.loads(found.head)["request_id"] for found in dead.entries] == ["x1"]
    assert [found.listed_id for found in dead.entries] == ["x1"]
    assert sorted(dead.codes) == ["invalid_request", "not_found"]
    assert dead.batches == ["batch-x"]
    one = windows.matching(keys.results, window=100, field_name="outcome", request_id="w2")
    assert [json.loads(found.head)["status"] for found in one.entries] == ["created"]

    assert dead_by_code(redis_client, keys, 100) == ({"not_found": 1, "invalid_request": 1}, 2)
    assert dead_by_code(redis_client, keys, 1) == ({"invalid_request": 1}, 1)
    now = time.time()
    assert finished_per_s(redis_client, keys, now, window_s=60, sample=1000) == round(7 / 60, 2)
    # More outcomes than the sample: the rate over the span the newest ones cover.
    assert finished_per_s(redis_client, keys, now, window_s=60, sample=3) > 7 / 60
