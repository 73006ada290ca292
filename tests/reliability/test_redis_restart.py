"""Redis restarts under a working worker: it reconnects and resumes by itself, nothing lost;
and a worker that stays alive but stops consuming is detected and exits for a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from grant_worker.config.settings import Settings
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.process.watchdog import STALLED_EXIT_CODE
from grant_worker.worker.testing import WorkerProcess
from tests.integration.conftest import next_client_id
from tests.local_redis import RedisServer
from tests.reliability.checks import assert_exactly_one_outcome_each, grant_duplicates

API = "https://api.example.com/"


def test_a_redis_restart_with_requests_queued_and_in_flight_loses_nothing(
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    figures: Callable[..., None],
) -> None:
    server = RedisServer(tmp_path).start()
    try:
        settings = settings_factory(
            redis_url=server.url,
            grants_concurrency=8,
            grants_retry_budget_s=3.0,
            grants_connect_timeout_s=1.0,
            grants_read_timeout_s=2.0,
            grants_restore_interval_s=1.0,
        )
        emulator.admin.set_faults(latency_ms=100)
        worker = start_worker(settings)
        requests = [{"grant": {"client_id": next_client_id(), "audience": API}} for _ in range(100)]
        with GrantClient(settings) as client:
            ids = client.submit_many(requests)
            deadline = time.monotonic() + 30
            while client.redis.xlen(client.keys.results) < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            done_before = client.redis.xlen(client.keys.results)
            server.restart(down_s=2.0)
            restarted_at = time.monotonic()
            list(client.wait_many(ids, timeout_s=120))
            resumed_s = time.monotonic() - restarted_at
            check = redis.Redis.from_url(server.url, decode_responses=True)
            outcomes = assert_exactly_one_outcome_each(check, client.keys.results, ids)
        assert worker.alive(), "the worker should have reconnected, not died"
        assert {o.status for o in outcomes.values()} <= {"created", "exists"}
        grants = emulator.admin.grants()
        assert len(grants) == 100
        assert grant_duplicates(grants) == {}
        figures(
            outcomes_before_restart=done_before,
            redis_down_s=2.0,
            all_done_after_restart_s=round(resumed_s, 1),
            duplicates=0,
        )
    finally:
        server.stop()


def test_a_worker_that_stops_consuming_is_detected_and_exits(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    figures: Callable[..., None],
) -> None:
    settings = settings_factory(grants_stall_after_s=3.0)
    worker = start_worker(settings, hostname="stall@%h")
    with GrantClient(settings) as client:
        # Celery's own remote control makes the consumer let go of the queue while the process
        # stays up: the symptom of the reconnect failure, on demand.
        app = client.celery_app
        hostname = f"stall@{__import__('socket').gethostname()}"
        app.control.cancel_consumer(settings.grants_queue, destination=[hostname], reply=True)
        client.submit({"grant": {"client_id": next_client_id(), "audience": API}})
        stalled_at = time.monotonic()
        assert worker.process is not None
        code = worker.process.wait(timeout=30)
        detected_s = time.monotonic() - stalled_at
    assert code == STALLED_EXIT_CODE
    assert "consumer stalled" in worker.log()
    figures(stall_after_s=3.0, detected_after_s=round(detected_s, 1))
