"""Bytes and Redis script time of the dashboard's pages when entries are large: 104 dead
letters (and their failed outcomes, all of one batch) of about 58 KB each, and 200 queued
messages of that batch of about as much each, on a Redis of its own.

    .venv/bin/python bench/large_letters.py [--letters 104] [--kb 58] [--queued 200] [--repeat 10]

Run by hand (the large-entries case of `dashboard_pages.py`). Printed per page: the bytes of
the answer, the script calls' (EVALSHA) median and slowest run time from SLOWLOG with every
call logged, and the server time. Every page is bounded by bytes as well as by count, and no
script the dashboard runs should block Redis for more than a few milliseconds.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import time

import redis
from shared import own_redis
from starlette.testclient import TestClient

from grant_worker.config.settings import Settings
from grant_worker.tasks.keys import Keys
from grant_worker.worker.dashboard.app import create_app

BATCH = "batch-big"
PAGES = [
    ("dead letters", "/dead"),
    ("dead, by code", "/dead?code=not_found"),
    ("dead, by batch", f"/dead?batch={BATCH}"),
    ("search", "/search?request_id=big-0042"),
    ("batch rows", f"/batches/{BATCH}"),
    ("batches", "/batches"),
]


def big_outcome(n: int, kb: int) -> dict[str, object]:
    half = kb * 1024 // 2
    return {
        "request_id": f"big-{n:04d}",
        "batch_id": BATCH,
        "status": "failed",
        "grant": None,
        "error": {
            "code": "not_found",
            "message": "the tenant said: " + "m" * 300,
            "details": {"answer": "d" * half},
        },
        "differences": None,
        "attempts": 3,
        "received_at": "2026-11-27T03:00:00.000Z",
        "finished_at": "2026-11-27T03:00:01.000Z",
        "metadata": None,
    }


def fill(client: redis.Redis, keys: Keys, letters: int, kb: int) -> None:
    half = kb * 1024 // 2
    for n in range(letters):
        outcome = big_outcome(n, kb)
        rid = str(outcome["request_id"])
        request = {"request_id": rid, "batch_id": BATCH, "grant": {"audience": "r" * half}}
        dead = json.dumps({**outcome, "request": request}, separators=(",", ":"))
        text = json.dumps(outcome, separators=(",", ":"))
        entry = client.xadd(keys.results, {"request_id": rid, "status": "failed", "outcome": text})
        client.xadd(keys.dead, {"request_id": rid, "status": "failed", "dead": dead})
        client.set(keys.outcome_record(rid), f"f {entry.decode()} fp")
        client.hset(keys.batch_rows(BATCH), rid, "failed")
    client.hset(keys.batch(BATCH), mapping={"total": letters, "queued": 0, "failed": letters})
    client.zadd(keys.batches, {BATCH: time.time()})


def queue_big(client: redis.Redis, keys: Keys, queue: str, count: int, kb: int) -> None:
    """`count` messages of the batch waiting on the queue, each a request of about `kb` KB in
    kombu's envelope (base64 body: a third more on the wire)."""
    half = kb * 1024 // 2
    for n in range(count):
        rid = f"queued-{n:04d}"
        request = {
            "request_id": rid,
            "grant": {"client_id": "svc-1", "audience": "r" * half, "scope": ["s" * half]},
            "batch_id": BATCH,
        }
        body = json.dumps([[], {"request": request}, {"callbacks": None}])
        envelope = {
            "body": base64.b64encode(body.encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"task": "grants.create", "id": rid},
            "properties": {"body_encoding": "base64", "delivery_tag": rid},
        }
        client.lpush(queue, json.dumps(envelope))
        client.hset(keys.batch_rows(BATCH), rid, "queued")
    client.hincrby(keys.batch(BATCH), "total", count)
    client.hincrby(keys.batch(BATCH), "queued", count)


def script_ms(client: redis.Redis) -> tuple[float, float]:
    """Median and slowest EVALSHA since the last SLOWLOG RESET, ms."""
    calls = [
        e["duration"] / 1000
        for e in client.slowlog_get(1000)
        if e["command"].startswith(b"EVALSHA")
    ]
    return (statistics.median(calls), max(calls)) if calls else (0.0, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=104)
    parser.add_argument("--kb", type=int, default=58)
    parser.add_argument("--queued", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    rows = []
    with own_redis() as port:
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, redis_url=url, grants_key_prefix="big:", grants_queue="big-queue"
        )
        fill(client, Keys("big:"), args.letters, args.kb)
        queue_big(client, Keys("big:"), "big-queue", args.queued, args.kb)
        client.config_set("slowlog-log-slower-than", 0)
        client.config_set("slowlog-max-len", 1000)
        with TestClient(create_app(settings), base_url="http://127.0.0.1:8808") as browser:
            for name, path in PAGES:
                browser.get(path)  # warm: templates compiled, scripts loaded
                client.slowlog_reset()
                samples, size = [], 0
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    answer = browser.get(path)
                    samples.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 200, (path, answer.status_code)
                    size = len(answer.content)
                rows.append((name, size, *script_ms(client), statistics.median(samples)))
    print(
        f"{args.letters} dead letters and failed outcomes and {args.queued} queued messages"
        f" of ~{args.kb} KB each"
    )
    print(f"{'page':<18}{'bytes':>12}{'script ms median / max':>26}{'server ms':>12}")
    for name, size, median_ms, max_ms, server_ms in rows:
        print(f"{name:<18}{size:>12,}{median_ms:>17.2f} / {max_ms:>6.2f}{server_ms:>12.1f}")


if __name__ == "__main__":
    main()
