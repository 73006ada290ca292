"""The per-second counters the overview draws: written beside each outcome and each answered
Management API call, over real HTTP to the emulator and a real Redis."""

from __future__ import annotations

import time
from typing import Any

import redis
import requests

from grant_worker.tasks.activity import ActivityCounter, slot
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import Outcome
from grant_worker.tasks.outcomes.recorder import OutcomeRecorder
from grant_worker.worker.dashboard.reads import DashboardReads

FIXED_NOW = 1_800_000_000.5


def test_management_calls_and_429s_are_counted_per_second_token_calls_are_not(
    emulator: Any, redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    session = requests.Session()
    ActivityCounter(redis_client, keys, clock=lambda: FIXED_NOW).count_calls_of(session)
    emulator.admin.set_rate_limit(rate=0.001, burst=1)
    grants = f"{emulator.base_url}/api/v2/client-grants"

    first = session.get(grants, timeout=5)  # takes the bucket's one token: 401, no credentials
    second = session.get(grants, timeout=5)  # the bucket is empty: 429
    emulator.admin.set_rate_limit(rate=None, burst=None)
    session.post(f"{emulator.base_url}/oauth/token", json={}, timeout=5)

    assert (first.status_code, second.status_code) == (401, 429)
    minute, second_of_minute = slot(FIXED_NOW)
    assert redis_client.hgetall(keys.activity(minute)) == {
        f"{second_of_minute}:call": "2",
        f"{second_of_minute}:call:429": "1",
    }
    assert 0 < redis_client.ttl(keys.activity(minute)) <= 20 * 60


def test_calls_counted_later_land_in_the_second_they_were_answered_once_flushed(
    emulator: Any, redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    session = requests.Session()
    counter = ActivityCounter(redis_client, keys, clock=lambda: FIXED_NOW)
    counter.count_calls_of(session, later=True)
    emulator.admin.set_rate_limit(rate=0.001, burst=1)
    grants = f"{emulator.base_url}/api/v2/client-grants"

    first = session.get(grants, timeout=5)
    second = session.get(grants, timeout=5)
    emulator.admin.set_rate_limit(rate=None, burst=None)
    session.post(f"{emulator.base_url}/oauth/token", json={}, timeout=5)
    counter.flush()

    assert (first.status_code, second.status_code) == (401, 429)
    minute, second_of_minute = slot(FIXED_NOW)
    assert redis_client.hgetall(keys.activity(minute)) == {
        f"{second_of_minute}:call": "2",
        f"{second_of_minute}:call:429": "1",
    }
    assert 0 < redis_client.ttl(keys.activity(minute)) <= 20 * 60


def test_calls_counted_later_are_written_by_the_counters_own_thread(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    counter = ActivityCounter(redis_client, keys, clock=lambda: FIXED_NOW)
    counter.count_later("call")
    counter.count_later("call")
    minute, second_of_minute = slot(FIXED_NOW)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not redis_client.hget(
        keys.activity(minute), f"{second_of_minute}:call"
    ):
        time.sleep(0.05)
    assert redis_client.hget(keys.activity(minute), f"{second_of_minute}:call") == "2"


def test_the_overview_reads_a_quarter_hour_of_counters_in_per_second_slots(
    redis_client: redis.Redis, key_prefix: str, queue_name: str
) -> None:
    keys = Keys(key_prefix)
    now = time.time()
    for ago in (0, 0, 5, 899, 900):
        ActivityCounter(redis_client, keys, clock=lambda ago=ago: now - ago).count(
            "outcome:created"
        )

    start, series = DashboardReads(redis_client, keys, queue_name).activity(now, 900)

    created = series["outcome:created"]
    assert start == int(now) - 899
    # 900 s ago lies outside the window; the others land in their own second.
    assert (created[-1], created[-6], created[0], sum(created)) == (2, 1, 1, 4)


def test_a_workers_outcomes_are_counted_from_memory_once_each(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    recorder = OutcomeRecorder(
        redis_client, keys, record_ttl_s=60, stream_maxlen=0, count_outcomes_later=True
    )
    outcome = Outcome(
        request_id="counted-once",
        status="created",
        attempts=1,
        received_at="2026-12-05T00:00:00Z",
        finished_at="2026-12-05T00:00:01Z",
    )
    minutes = {slot(time.time())[0]}
    assert recorder.record(outcome)
    assert not recorder.record(outcome)  # already recorded: not counted again
    minutes.add(slot(time.time())[0])

    def created() -> int:
        return sum(
            int(count)
            for minute in minutes
            for field, count in redis_client.hgetall(keys.activity(minute)).items()
            if field.endswith(":outcome:created")
        )

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not created():
        time.sleep(0.05)
    assert created() == 1
