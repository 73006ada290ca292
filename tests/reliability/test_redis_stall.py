"""A Redis that stops answering while keeping its connections open (a network stall, a long
fork for a snapshot, a paused VM) is waited for: no worker exits, every request ends.

A real `redis-server` of the test's own, paused with SIGSTOP for 45 s and resumed with SIGCONT,
under two workers at default settings with 600 requests queued. Every thread that talks to
Redis blocks meanwhile, the intake bridge's among them; the watchdog must not take that for a
dead bridge, or every worker exits 70 at the same moment and the fleet is gone.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from grant_worker.config.settings import Settings
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.integration.conftest import next_client_id
from tests.local_redis import RedisServer
from tests.reliability.checks import (
    assert_exactly_one_outcome_each,
    grant_duplicates,
    shipped_defaults,
)
from tests.reliability.test_crash_recovery import wait_until

API = "https://api.example.com/"
REQUESTS = 600
STALL_S = 45.0
# Every request is done within this long of Redis answering again: what operators are promised.
DONE_AFTER_RETURN_GOAL_S = 90.0


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_45_s_redis_stall_under_600_requests_is_waited_for_by_both_workers(
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    figures: Callable[..., None],
) -> None:
    server = RedisServer(tmp_path).start()
    assert server.process is not None
    paused = False
    try:
        settings = settings_factory(redis_url=server.url, **shipped_defaults())
        emulator.admin.set_faults(latency_ms=200)
        workers = [start_worker(settings, hostname=f"stall-{n}@%h") for n in range(2)]
        requests = [
            {"grant": {"client_id": next_client_id(), "audience": API}} for _ in range(REQUESTS)
        ]
        with GrantClient(settings) as client:
            ids = client.submit_many(requests)
            wait_until(lambda: client.redis.xlen(client.keys.results) >= 30, 60, "some done")
            done_before = client.redis.xlen(client.keys.results)
            server.process.send_signal(signal.SIGSTOP)
            paused = True
            time.sleep(STALL_S)
            server.process.send_signal(signal.SIGCONT)
            paused = False
            back_at = time.monotonic()
            exits: dict[str, int | None] = {}

            def all_recorded_or_no_worker() -> bool:
                for worker in workers:
                    if not worker.alive():
                        exits[worker.hostname or "?"] = worker.process and worker.process.poll()
                if len(exits) == len(workers):
                    return True
                keys = [client.keys.outcome_record(i) for i in ids]
                return bool(client.redis.exists(*keys) == len(ids))

            with contextlib.suppress(AssertionError):
                wait_until(all_recorded_or_no_worker, DONE_AFTER_RETURN_GOAL_S + 30, "outcomes")
            check = redis.Redis.from_url(server.url, decode_responses=True)
            recorded = check.exists(*[client.keys.outcome_record(i) for i in ids])
            done_after_s = time.monotonic() - back_at if recorded == len(ids) else None
            grants = emulator.admin.grants()
            figures(
                requests=REQUESTS,
                outcomes_before_stall=done_before,
                redis_stalled_s=STALL_S,
                all_done_after_redis_back_s=None
                if done_after_s is None
                else round(done_after_s, 1),
                goal_s=DONE_AFTER_RETURN_GOAL_S,
                recorded=recorded,
                workers_alive=sum(w.alive() for w in workers),
                exits=exits,
                duplicates=len(grant_duplicates(grants)),
            )
            assert not exits, f"workers exited while Redis was away: {exits}"
            assert all(w.alive() for w in workers)
            assert done_after_s is not None, f"{REQUESTS - recorded} requests without an outcome"
            assert done_after_s <= DONE_AFTER_RETURN_GOAL_S
            outcomes = assert_exactly_one_outcome_each(check, client.keys.results, ids)
        for worker in workers:
            assert "the intake bridge is not running" not in worker.log()
        assert {o.status for o in outcomes.values()} <= {"created", "exists"}
        assert len(grants) == REQUESTS
        assert grant_duplicates(grants) == {}
    finally:
        if paused:
            server.process.send_signal(signal.SIGCONT)
        server.stop()
