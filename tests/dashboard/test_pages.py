"""The pages show what Redis holds, read through the dashboard's bounded reads."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import redis
from starlette.testclient import TestClient

from grant_worker.tasks.keys import Keys
from tests.dashboard.conftest import grant_request


def test_overview_charts_the_outcomes_recorded_by_the_worker_recorder(
    browse: Callable[..., TestClient], record: Callable[..., Any]
) -> None:
    record("ov-1", "created")
    record("ov-2", "created")
    record("ov-3", "failed", code="not_found", original=grant_request("ov-3", "https://nope/"))

    page = browse().get("/")

    assert page.status_code == 200
    # The per-second counters written beside each outcome are what the chart draws.
    assert "created: 2 in 15 min" in page.text
    assert "failed: 1 in 15 min" in page.text
    assert re.search(r'<polyline class="series s-created" points="[^"]+"', page.text)
    assert "not learned yet" in page.text
    assert "no registered worker" in page.text


def test_overview_shows_breaker_cause_learned_rate_and_workers(
    browse: Callable[..., TestClient], redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    redis_client.hset(
        f"{key_prefix}breaker",
        mapping={
            "state": "open",
            "cause": "token_refused",
            "message": "401 from /oauth/token",
            "since": 1,
            "next_probe_at": 2,
        },
    )
    # The pace's hash as `tasks.flow.pace` keeps it: limit/remaining from headers, the learned rate.
    pause_us = int((time.time() + 30) * 1_000_000)
    redis_client.hset(
        keys.pace, mapping={"limit": 50, "remaining": 3, "rate": 15, "pause": pause_us}
    )
    # The register and heartbeat as `worker.process.recovery.beat` writes them.
    redis_client.set(
        keys.heartbeat("celery@box-1/b00t2"),
        '{"busy": 2, "capacity": 8, "queued": 5, "idle_s": 0.2, "stalled": false, '
        f'"at": {time.time()}, "boot": "b00t2"}}',
    )
    redis_client.sadd(f"{key_prefix}workers", "celery@box-1/b00t2", "celery@box-1/b00t1")

    text = browse().get("/", headers={"HX-Request": "true"}).text

    assert "token_refused" in text and "401 from /oauth/token" in text
    assert 'class="gauge breaker open"' in text
    assert "limit 15/s" in text
    assert "429: fleet paused for" in text
    assert "celery@box-1/b00t2" in text and "2/8" in text
    # The earlier life of the same host left no heartbeat of its own: lapsed, not alive.
    assert "none (lapsed)" in text


def test_batch_rows_list_failed_then_exists_differs_first(
    browse: Callable[..., TestClient], record: Callable[..., Any]
) -> None:
    record("b-created", "created", batch_id="batch-a")
    record("b-differs", "exists", batch_id="batch-a", differences={"scope": {"extra": ["x"]}})
    record("b-failed", "failed", batch_id="batch-a", code="not_found")
    record("b-same", "exists", batch_id="batch-a")
    record("other", "created", batch_id="batch-b")
    client = browse()

    listing = client.get("/batches").text
    rows = client.get("/batches/batch-a").text

    assert "batch-a" in listing and "batch-b" in listing
    assert 'data-batch="batch-a">100 %' in listing
    order = [rows.index(rid) for rid in ("b-failed", "b-differs", "b-same", "b-created")]
    assert order == sorted(order)
    assert "other" not in rows


def test_batch_progress_counts_queued_requests_as_pending(
    browse: Callable[..., TestClient],
    record: Callable[..., Any],
    dashboard_settings: Callable[..., Any],
) -> None:
    from grant_worker.worker.client.grant_client import GrantClient

    record("p-1", "created", batch_id="batch-p")
    with GrantClient(dashboard_settings()) as producer:
        producer.submit(grant_request("p-2", "https://api.example.com/", batch_id="batch-p"))
        producer.submit(grant_request("p-3", "https://api.example.com/", batch_id="batch-p"))

    text = browse().get("/batches").text

    assert 'data-batch="batch-p">33 %' in text
    assert "1 / 3" in text


def test_dead_letters_filter_by_code_and_batch(
    browse: Callable[..., TestClient], record: Callable[..., Any]
) -> None:
    record("d-1", "failed", batch_id="b1", code="not_found", original=grant_request("d-1", "u"))
    record("d-2", "rejected", batch_id="b2", code="invalid_request", original="{not json")
    record("d-3", "failed", batch_id="b2", code="not_found", original=grant_request("d-3", "u"))
    client = browse()

    by_code = client.get("/dead", params={"code": "not_found"}).text
    by_both = client.get("/dead", params={"code": "not_found", "batch": "b2"}).text

    assert "d-1" in by_code and "d-3" in by_code and "d-2" not in by_code
    assert "d-3" in by_both and "d-1" not in by_both
    assert "{not json" in client.get("/dead", params={"batch": "b2"}).text


def test_search_shows_outcome_attempts_and_history(
    browse: Callable[..., TestClient], record: Callable[..., Any]
) -> None:
    record("s-1", "failed", code="upstream_error", original=grant_request("s-1", "u"))

    text = browse().get("/search", params={"request_id": "s-1"}).text

    assert 'id="outcome-status">failed' in text
    assert "upstream_error" in text
    assert "dead letters" in text and "results" in text


def test_search_names_the_rule_of_a_bad_request_id(browse: Callable[..., TestClient]) -> None:
    text = browse().get("/search", params={"request_id": "a b"}).text

    assert "request_id: 1-128 characters" in text


def test_batches_read_issue_10s_ledger_and_rows_when_they_exist(
    browse: Callable[..., TestClient],
    record: Callable[..., Any],
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    # The ledger as `tasks.outcomes.batches` writes it; the failed row's outcome is
    # only in its record, not among the outcomes this test put on the stream.
    redis_client.hset(
        f"{key_prefix}batch:ledgered",
        mapping={"total": 4, "queued": 1, "created": 1, "exists_differs": 1, "failed": 1},
    )
    redis_client.hset(
        f"{key_prefix}batch-rows:ledgered",
        mapping={"l-1": "created", "l-2": "exists_differs", "l-3": "failed", "l-4": "queued"},
    )
    redis_client.zadd(f"{key_prefix}batches", {"ledgered": 1})
    redis_client.set(
        Keys(key_prefix).outcome_record("l-3"),
        '{"request_id": "l-3", "status": "failed", "attempts": 2, '
        '"error": {"code": "not_found", "message": "no such API"}}',
    )
    client = browse()

    listing = client.get("/batches").text
    rows = client.get("/batches/ledgered").text

    assert 'data-batch="ledgered">75 %' in listing and "estimate" not in listing
    order = [rows.index(rid) for rid in ("l-3", "l-2", "l-1", "l-4")]
    assert order == sorted(order)
    assert "no such API" in rows
