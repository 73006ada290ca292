"""SIGTERM while the tenant hangs on half the calls: the worker exits 0 within its grace, what it
waited on or still had in flight goes back to the queue, and another worker finishes every
request exactly once, creating no grant twice."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from grant_worker.config.settings import Settings
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.integration.conftest import next_client_id
from tests.reliability.checks import assert_exactly_one_outcome_each, grant_duplicates
from tests.reliability.test_crash_recovery import wait_until

API = "https://api.example.com/"
# Scaled down from the defaults (grace 20 s, read timeout 15 s, a tenant hanging far longer):
# the hung calls outlast the grace, as in the finding.
GRACE_S = 3.0
SETTINGS = {
    "grants_shutdown_grace_s": GRACE_S,
    "grants_read_timeout_s": 8.0,
    "grants_retry_budget_s": 30.0,
    "grants_concurrency": 8,
}


@pytest.mark.slow
def test_sigterm_with_hung_calls_exits_0_within_the_grace_and_loses_nothing(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: redis.Redis,
    figures: Callable[..., None],
) -> None:
    settings = settings_factory(**SETTINGS)
    # Hung calls outlast the grace; they end (long after the worker) before the test does,
    # so that no late create lands in the next test's tenant.
    emulator.admin.set_faults(hang_rate=0.5, hang_s=6.0, latency_ms=200)
    stopping = start_worker(settings, hostname="stopping@test")
    requests = [{"grant": {"client_id": next_client_id(), "audience": API}} for _ in range(24)]
    with GrantClient(settings) as client:
        ids = client.submit_many(requests)
        wait_until(lambda: emulator.admin.stats()["hung"] >= 2, 30, "calls hanging")
        assert stopping.process is not None
        stopping.process.terminate()  # SIGTERM
        signalled_at = time.monotonic()
        exit_code = stopping.process.wait(timeout=GRACE_S + 15)
        exit_s = time.monotonic() - signalled_at
        emulator.admin.set_faults(hang_rate=0.0, latency_ms=0)
        start_worker(settings, hostname="successor@test")
        list(client.wait_many(ids, timeout_s=60))
        wait_until(lambda: emulator.admin.stats()["in_flight"] == 0, 30, "hung calls ended")
    assert exit_code == 0
    log = stopping.log()
    assert "shutdown grace of 3 s over" in log
    # It stopped consuming at once: a message already on its way when the signal came was
    # handed straight back, not worked on.
    after_signal = log.split("Warm shutdown", 1)[1]
    taken = re.findall(r"grants\.create\[([^\]]+)\] received", after_signal)
    returned = re.findall(
        r"request (\S+) back to the queue in 0\.0 s: the worker is shutting", after_signal
    )
    assert set(taken) <= set(returned)
    outcomes = assert_exactly_one_outcome_each(redis_client, client.keys.results, ids)
    statuses = [outcome.status for outcome in outcomes.values()]
    assert set(statuses) == {"created"}, statuses
    assert grant_duplicates(emulator.admin.grants()) == {}
    figures(
        grace_s=GRACE_S,
        exit_after_sigterm_s=round(exit_s, 1),
        exit_code=exit_code,
        hung_calls=emulator.admin.stats()["hung"],
        created_by_lookup=sum(1 for o in outcomes.values() if o.resolved_by == "lookup"),
        duplicates=0,
    )


def test_sigterm_returns_requests_waiting_for_a_fleet_slot_at_once(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: redis.Redis,
) -> None:
    # One call a second for the fleet, and a slot wait long enough that, unless SIGTERM cuts
    # the nap short, requests would still be waiting for their slot when the grace ends.
    settings = settings_factory(
        **SETTINGS, grants_rate_limit=1, grants_rate_burst=1, grants_slot_wait_s=30.0
    )
    stopping = start_worker(settings, hostname="pacing@test")
    requests = [{"grant": {"client_id": next_client_id(), "audience": API}} for _ in range(8)]
    with GrantClient(settings) as client:
        ids = client.submit_many(requests)
        wait_until(
            lambda: int(redis_client.xlen(client.keys.results)) >= 2, 30, "the first outcomes"
        )
        assert stopping.process is not None
        stopping.process.terminate()  # SIGTERM
        exit_code = stopping.process.wait(timeout=GRACE_S + 15)
        start_worker(settings, hostname="pacing-successor@test")
        list(client.wait_many(ids, timeout_s=60))
    assert exit_code == 0
    log = stopping.log()
    # Nothing was left for the grace to abandon: the waiting requests went back at once.
    assert "shutdown grace of 3 s over" not in log
    assert re.search(r"back to the queue in \d+\.\d s: the worker is shutting", log)
    outcomes = assert_exactly_one_outcome_each(redis_client, client.keys.results, ids)
    assert {outcome.status for outcome in outcomes.values()} == {"created"}
    assert grant_duplicates(emulator.admin.grants()) == {}
