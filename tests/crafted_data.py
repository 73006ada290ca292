"""Malformed values under a deployment's prefix, planted beside readable ones.

Anyone who can write to Redis can leave a value no writer of ours would: a hand-edited hash, a
half-migrated stream, a foreign producer. Every reader must show such a value as unreadable (or
skip it with a line) and still show the readable entries around it. `plant` writes one of each
kind for every piece of state the dashboard and the commands read, and `READABLE` names what
must still be shown.
"""

from __future__ import annotations

import json
import time

import redis

from grant_worker.tasks.activity import slot
from grant_worker.tasks.keys import Keys

GOOD_BATCH = "good-batch"
JUNK_BATCH = "junk-batch"
GOOD_DEAD = "good-dead-1"
GOOD_RESULT = "good-result-1"
GOOD_WORKER = "celery@good/b00t1"
READABLE = (GOOD_DEAD, GOOD_RESULT)


def _outcome(request_id: str, status: str, **extra: object) -> str:
    outcome = {
        "request_id": request_id,
        "batch_id": GOOD_BATCH,
        "status": status,
        "attempts": 1,
        "received_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:01Z",
        **extra,
    }
    return json.dumps(outcome)


def plant(client: redis.Redis, keys: Keys, queue: str) -> None:
    """One readable entry and every kind of unreadable one, for each piece of state."""
    now = time.time()
    minute, second = slot(now)
    client.hset(
        keys.activity(minute),
        mapping={
            f"{second}:outcome:created": 3,
            f"{second}:outcome:failed": "lots",
            "nonsense": 1,
            f"x{second}:call": 2,
            f"{second}:call": "1.5",
        },
    )

    client.set(keys.heartbeat(GOOD_WORKER), json.dumps({"at": now, "busy": 1, "capacity": 4}))
    client.set(keys.heartbeat("celery@notjson/b1"), "{not json")
    client.set(keys.heartbeat("celery@list/b1"), "[1, 2]")
    client.set(
        keys.heartbeat("celery@types/b1"),
        json.dumps({"at": "yesterday", "busy": [1], "capacity": {"x": 1}, "idle_s": "soon"}),
    )
    client.sadd(keys.workers, GOOD_WORKER, "celery@notjson/b1", "celery@list/b1", "celery@types/b1")

    client.hset(keys.batch(GOOD_BATCH), mapping={"total": 2, "queued": 1, "created": 1})
    client.hset(
        keys.batch(JUNK_BATCH),
        mapping={
            "total": "many",
            "queued": "-",
            "created": "1e3",
            "failed": "",
            "first_enqueued_ms": "soon",
            "last_outcome_ms": "[]",
        },
    )
    client.hset(keys.batch_rows(JUNK_BATCH), mapping={"r-1": "sideways", "r-2": "created"})
    client.zadd(keys.batches, {GOOD_BATCH: now, JUNK_BATCH: now + 1})

    for message in (
        "not json",
        "[1, 2, 3]",
        "42",
        json.dumps({"body": 12, "headers": "no"}),
        json.dumps({"body": "!!!", "properties": {"body_encoding": "base64"}, "headers": None}),
        json.dumps({"body": "[1]", "properties": "x", "headers": {"id": ["x"]}}),
    ):
        client.lpush(queue, message)
    client.hset(
        keys.unacked,
        mapping={"t1": "not json", "t2": "[]", "t3": "[42]", "t4": json.dumps([{"body": None}])},
    )

    for fields in (
        {"request_id": "no-outcome-field", "status": "created"},
        {"request_id": "not-json", "status": "created", "outcome": "{nope"},
        {"request_id": "a-list", "status": "created", "outcome": "[1, 2]"},
        {"request_id": "a-number", "status": "created", "outcome": "42"},
        {
            "request_id": "wrong-types",
            "status": "created",
            "outcome": json.dumps(
                {"request_id": 7, "status": ["x"], "batch_id": 3, "error": "boom", "attempts": "?"}
            ),
        },
    ):
        client.xadd(keys.results, fields)  # type: ignore[arg-type]
    client.xadd(
        keys.results,
        {
            "request_id": GOOD_RESULT,
            "status": "created",
            "outcome": _outcome(GOOD_RESULT, "created"),
        },
    )

    # Records and per-request state as /search reads them.
    client.set(keys.outcome_record("not-json"), "garbage")
    client.set(keys.outcome_record("a-list"), "{[}")
    client.set(keys.deliveries("not-json"), "many")

    good_letter = _outcome(
        GOOD_DEAD,
        "failed",
        error={"code": "not_found", "message": "no such API"},
        request={
            "request_id": GOOD_DEAD,
            "batch_id": GOOD_BATCH,
            "grant": {"client_id": "svc-1", "audience": "https://api.example.com/"},
        },
    )
    for fields in (
        {"request_id": "no-dead-field", "status": "failed"},
        {"request_id": "dead-not-json", "status": "failed", "dead": "{nope"},
        {"request_id": "dead-list", "status": "failed", "dead": "[1, 2]"},
        {"request_id": "dead-number", "status": "failed", "dead": "42"},
        {
            "request_id": "dead-types",
            "status": "failed",
            "dead": json.dumps(
                {"request_id": ["x"], "error": "boom", "batch_id": 5, "request": 12}
            ),
        },
        {
            "request_id": "dead-error-types",
            "status": "failed",
            "dead": json.dumps({"request_id": "dead-error-types", "error": {"code": 5}}),
        },
    ):
        client.xadd(keys.dead, fields)  # type: ignore[arg-type]
    client.xadd(keys.dead, {"request_id": GOOD_DEAD, "status": "failed", "dead": good_letter})
