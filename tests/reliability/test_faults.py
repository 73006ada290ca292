"""Auth0 misbehaving: faults together, an outage longer than the budget then a replay, and a
token that expires mid-run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from grant_worker.config.settings import Settings
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.integration.conftest import next_client_id
from tests.reliability.checks import assert_exactly_one_outcome_each, grant_duplicates

API = "https://api.example.com/"


def new_requests(count: int) -> list[dict[str, Any]]:
    return [{"grant": {"client_id": next_client_id(), "audience": API}} for _ in range(count)]


def test_5xx_drops_and_lost_replies_together_end_in_created_or_exists_never_twice(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: Any,
    figures: Callable[..., None],
) -> None:
    settings = settings_factory(grants_concurrency=16, grants_retry_budget_s=30.0)
    start_worker(settings)
    emulator.admin.set_faults(error_rate=0.10, drop_rate=0.05, commit_lost_rate=0.05)
    with GrantClient(settings) as client:
        ids = client.submit_many(new_requests(300))
        list(client.wait_many(ids, timeout_s=180))
    outcomes = assert_exactly_one_outcome_each(redis_client, client.keys.results, ids)
    statuses = [o.status for o in outcomes.values()]
    assert set(statuses) <= {"created", "exists"}, [o.error for o in outcomes.values() if o.error]
    grants = emulator.admin.grants()
    assert len(grants) == 300
    assert grant_duplicates(grants) == {}
    stats = emulator.admin.stats()
    assert stats["injected_errors"] > 0 and stats["dropped"] > 0 and stats["commit_lost"] > 0
    figures(
        requests=300,
        injected_5xx=stats["injected_errors"],
        dropped_connections=stats["dropped"],
        committed_then_lost=stats["commit_lost"],
        created=statuses.count("created"),
        exists=statuses.count("exists"),
        failed=0,
        duplicates=0,
    )


def test_an_outage_longer_than_the_budget_leaves_requests_queued_then_creates_each_once(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: Any,
    figures: Callable[..., None],
) -> None:
    settings = settings_factory(grants_retry_budget_s=1.0, grants_concurrency=8)
    start_worker(settings)
    with GrantClient(settings) as client:
        emulator.admin.set_faults(error_rate=1.0)
        five_xx = client.submit_many(new_requests(10))
        time.sleep(2.0)
        emulator.admin.set_faults(error_rate=0.0, drop_rate=1.0)
        dropped = client.submit_many(new_requests(5))
        time.sleep(2.0)
        # four budgets of 5xx and dropped connections: nothing failed, nothing dead-lettered
        assert all(client.outcome(rid) is None for rid in five_xx + dropped)
        assert redis_client.xlen(client.keys.dead) == 0
        emulator.admin.set_faults(drop_rate=0.0)
        after = {o.request_id: o for o in client.wait_many(five_xx + dropped, timeout_s=60)}
    assert {o.status for o in after.values()} <= {"created", "exists"}
    assert redis_client.xlen(client.keys.dead) == 0
    grants = emulator.admin.grants()
    assert len(grants) == 15
    assert grant_duplicates(grants) == {}
    figures(outage_requests=15, failed=0, dead_letters=0, duplicates=0)


@pytest.mark.slow
def test_a_token_that_expires_mid_run_is_refreshed_and_no_request_fails(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: Any,
    figures: Callable[..., None],
) -> None:
    emulator.admin.set_token_lifetime(1)
    emulator.admin.set_rate_limit(20, 5)
    settings = settings_factory(grants_concurrency=4, grants_retry_budget_s=30.0)
    start_worker(settings)
    with GrantClient(settings) as client:
        ids = client.submit_many(new_requests(80))
        list(client.wait_many(ids, timeout_s=120))
    outcomes = assert_exactly_one_outcome_each(redis_client, client.keys.results, ids)
    assert {o.status for o in outcomes.values()} == {"created"}
    stats = emulator.admin.stats()
    assert stats["tokens_issued"] >= 2
    figures(requests=80, tokens_issued=stats["tokens_issued"], failed=0)
