"""A worker killed mid-flight loses nothing and creates nothing twice; a request that kills
every worker it meets ends as poison instead of looping."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from grant_worker.config.settings import Settings
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.integration.conftest import next_client_id
from tests.reliability.checks import assert_exactly_one_outcome_each, grant_duplicates

API = "https://api.example.com/"

# Short budget and timeouts so the derived visibility timeout, and with it the recovery after a
# crash, is seconds: recovery is made short by configuration, not by luck.
FAST_RECOVERY = {
    "grants_retry_budget_s": 3.0,
    "grants_connect_timeout_s": 1.0,
    "grants_read_timeout_s": 2.0,
    "grants_restore_interval_s": 1.0,
}


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.slow
def test_sigkill_with_50_requests_in_flight_loses_nothing_and_creates_nothing_twice(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: Any,
    figures: Callable[..., None],
) -> None:
    settings = settings_factory(grants_concurrency=64, **FAST_RECOVERY)
    # Slow enough replies that 50 requests are in flight at once even on a loaded machine
    # (at 200 ms the worker finished them faster than it took them, peaking near 30).
    emulator.admin.set_faults(latency_ms=1000, jitter_ms=20)
    worker = start_worker(settings, hostname="crash-1@%h")
    requests = [{"grant": {"client_id": next_client_id(), "audience": API}} for _ in range(200)]
    with GrantClient(settings) as client:
        ids = client.submit_many(requests)
        wait_until(lambda: emulator.admin.stats()["in_flight"] >= 50, 30, "50 requests in flight")
        in_flight = emulator.admin.stats()["in_flight"]
        worker.kill()
        killed_at = time.monotonic()
        start_worker(settings, hostname="crash-2@%h")
        list(client.wait_many(ids, timeout_s=120))
        recovery_s = time.monotonic() - killed_at
    outcomes = assert_exactly_one_outcome_each(redis_client, client.keys.results, ids)
    statuses = [outcome.status for outcome in outcomes.values()]
    errors = Counter(o.error.message for o in outcomes.values() if o.error is not None)
    assert set(statuses) <= {"created", "exists"}, errors.most_common(3)
    grants = emulator.admin.grants()
    assert len(grants) == 200
    assert grant_duplicates(grants) == {}
    posts = emulator.admin.stats()["posts_by_grant_key"]
    figures(
        in_flight_at_kill=in_flight,
        recovery_s=round(recovery_s, 1),
        visibility_timeout_s=settings.visibility_timeout_s,
        created=statuses.count("created"),
        exists=statuses.count("exists"),
        keys_posted_twice=sum(1 for n in posts.values() if n > 1),
        duplicates=0,
    )


def test_a_request_that_kills_every_worker_ends_as_poison_after_max_deliveries(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: Any,
    figures: Callable[..., None],
) -> None:
    settings = settings_factory(grants_max_deliveries=2, **FAST_RECOVERY)
    # Slow replies keep each delivery in the worker long enough to be killed there.
    emulator.admin.set_faults(latency_ms=1500)
    started = time.monotonic()
    worker = start_worker(settings)
    with GrantClient(settings) as client:
        request_id = client.submit(
            {"request_id": "poison-1", "grant": {"client_id": next_client_id(), "audience": API}}
        )
        deliveries_key = client.keys.deliveries(request_id)
        for delivery in (1, 2):
            wait_until(
                lambda n=delivery: int(redis_client.get(deliveries_key) or 0) >= n,  # type: ignore[misc]
                60,
                f"delivery {delivery}",
            )
            worker.kill()
            worker = start_worker(settings)
        outcome = client.wait(request_id, timeout_s=60)
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.code == "poison"
    assert "GRANTS_MAX_DELIVERIES=2" in outcome.error.message
    dead = [fields["request_id"] for _id, fields in redis_client.xrange(client.keys.dead)]
    assert dead == [request_id]
    figures(deliveries=3, max_deliveries=2, seconds_to_poison=round(time.monotonic() - started, 1))
